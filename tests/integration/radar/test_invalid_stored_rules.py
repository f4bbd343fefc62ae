"""A rule stored before saving checked it, which fails a check saving makes now, never runs:
not on payments, not in a dry run. The payment path logs it once per process and the rules
listing says why, so an operator can fix or delete it (remit.radar.validity).

The rules are written straight into the database, as an older version saved them."""

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.clock import FixedClock
from remit.core.errors import RemitError
from remit.core.jsonview import to_json
from remit.payments.domain import Status
from remit.radar import gate
from remit.radar.domain import ItemType, Rule, RuleAction
from remit.radar.messages import rule_message
from remit.radar.repository import RuleRepository
from remit.radar.service import RadarService
from tests.integration.radar.test_radar_in_payments import Parts, pay
from tests.support.radar_cli import radar_cli

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# Each would match every payment of a card from the US (the cards of `Parts`), as a block rule.
INVALID = {
    "rule_wrong_kind": (
        ":card_country: not in @vips",
        ":card_country: cannot be tested against @vips, a list of email values; test it "
        "against a list of country, case_sensitive_string or string values.",
    ),
    "rule_list_gone": (
        ":card_country: not in @gone",
        "The rule refers to a value list that does not exist: @gone.",
    ),
    "rule_number": (
        ":amount: not in @words",
        "Invalid rule: A number cannot be tested against a value list; value lists hold "
        "strings (a number can be tested with in against a set such as (1, 2)).",
    ),
    # Saved before addresses with a zone were refused: no client's address has one.
    "rule_zoned_ip": (
        ":card_country: = 'US' or :ip_address: != 'fe80::1%eth0'",
        "Invalid rule: 'fe80::1%eth0' is not an IP address (an address with a zone (%...) "
        "names a network interface of the machine that saw it, not a client); :ip_address: "
        "is compared with addresses such as '203.0.113.5' or '2001:db8::1'.",
    ),
}


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    """The warning is logged once per process and rule: start each test afresh."""
    gate.compiled.cache_clear()
    gate._warn_invalid.cache_clear()
    yield
    gate.compiled.cache_clear()
    gate._warn_invalid.cache_clear()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def parts(core_engine: AsyncEngine, clock: FixedClock) -> Parts:
    return Parts(core_engine, clock)


@pytest.fixture
async def account_id(core_engine: AsyncEngine) -> str:
    return (await AccountsService(core_engine).create_account()).account.id


async def _stored(engine: AsyncEngine, account_id: str, radar: RadarService) -> Rule:
    """The invalid block rules, stored as an older version saved them, then a valid review
    rule that every payment of more than $5 matches."""
    await radar.create_value_list(account_id, alias="vips", name="VIPs", item_type=ItemType.EMAIL)
    await radar.create_value_list(account_id, alias="words", name="Words")
    async with engine.begin() as db:
        rules = RuleRepository(db)
        for position, (rule_id, (predicate, _)) in enumerate(INVALID.items()):
            await rules.insert(
                Rule(rule_id, account_id, RuleAction.BLOCK, predicate, position, NOW)
            )
    return await radar.create_rule(account_id, RuleAction.REVIEW, ":amount_in_usd: > 5")


async def test_a_payment_meets_only_the_rules_that_can_run_and_each_other_is_logged_once(
    parts: Parts, account_id: str, core_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    review = await _stored(core_engine, account_id, parts.radar)
    with caplog.at_level(logging.WARNING, logger=gate.__name__):
        first = await pay(parts, account_id, "first")
        second = await pay(parts, account_id, "second")
    for intent in (first, second):
        assert intent.status is Status.SUCCEEDED
        charge, _ = await parts.payments.get_charge(account_id, intent.latest_charge_id or "")
        assert charge.outcome is not None
        assert (charge.outcome["type"], charge.outcome["rule"]) == ("manual_review", review.id)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for rule_id in ("rule_wrong_kind", "rule_list_gone"):
        (message,) = [m for m in warned if rule_id in m]
        assert "does not run" in message
        assert INVALID[rule_id][1] in message


async def test_a_dry_run_leaves_them_out_too(
    parts: Parts, account_id: str, core_engine: AsyncEngine
) -> None:
    review = await _stored(core_engine, account_id, parts.radar)
    decision = await parts.radar.evaluate(
        account_id, {"amount_in_usd": 20, "card_country": "US", "amount": 2000}
    )
    assert (decision.action, decision.rule_id) == (RuleAction.REVIEW, review.id)


async def test_the_rules_listing_says_why_each_does_not_run(
    parts: Parts, account_id: str, core_engine: AsyncEngine
) -> None:
    review = await _stored(core_engine, account_id, parts.radar)
    listed, _ = await parts.radar.list_rules(account_id, limit=10)
    assert {rule.id: rule.invalid_reason for rule in listed} == {
        **{rule_id: reason for rule_id, (_, reason) in INVALID.items()},
        review.id: None,
    }
    one = await parts.radar.get_rule(account_id, "rule_wrong_kind")
    assert one.invalid_reason == INVALID["rule_wrong_kind"][1]
    shown = to_json(rule_message(one))
    assert shown["invalid_reason"] == INVALID["rule_wrong_kind"][1]
    assert to_json(rule_message(review))["invalid_reason"] is None


async def test_a_rule_fixed_by_an_update_runs_again(
    parts: Parts, account_id: str, core_engine: AsyncEngine
) -> None:
    await _stored(core_engine, account_id, parts.radar)
    await parts.radar.create_value_list(
        account_id, alias="countries", name="Countries", item_type=ItemType.COUNTRY
    )
    fixed = await parts.radar.update_rule(
        account_id, "rule_wrong_kind", predicate=":card_country: not in @countries"
    )
    assert (await parts.radar.get_rule(account_id, fixed.id)).invalid_reason is None
    with pytest.raises(RemitError) as blocked:
        await pay(parts, account_id, "blocked")
    assert blocked.value.decline_code == "fraudulent"


async def test_the_command_line_listing_marks_them(
    parts: Parts,
    account_id: str,
    core_engine: AsyncEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    review = await _stored(core_engine, account_id, parts.radar)
    async with radar_cli(core_engine, account_id, tmp_path, monkeypatch) as run:
        printed = await run(radar_group="rules", radar_command="list")
    lines = {line.split("\t")[1]: line.split("\t")[4:] for line in printed.splitlines()}
    assert lines == {
        **{
            rule_id: [f"INVALID, does not run: {reason}"]
            for rule_id, (_, reason) in INVALID.items()
        },
        review.id: [],
    }


async def test_a_rule_remit_disabled_shows_why_until_its_predicate_is_changed(
    parts: Parts, account_id: str, core_engine: AsyncEngine
) -> None:
    """Core migration 0069 records why it disabled a rule: the listing shows that reason, and
    a predicate saved since clears it."""
    recorded = "Disabled by remit's upgrade (core migration 0069): ..."
    predicate, _ = INVALID["rule_zoned_ip"]
    async with core_engine.begin() as db:
        await RuleRepository(db).insert(
            Rule(
                "rule_zoned_ip",
                account_id,
                RuleAction.BLOCK,
                predicate,
                0,
                NOW,
                disabled_reason=recorded,
            )
        )
    [listed], _ = await parts.radar.list_rules(account_id, limit=10)
    assert listed.invalid_reason == recorded
    assert to_json(rule_message(listed))["invalid_reason"] == recorded
    moved = await parts.radar.update_rule(account_id, "rule_zoned_ip", action=RuleAction.REVIEW)
    assert (await parts.radar.get_rule(account_id, moved.id)).invalid_reason == recorded

    await parts.radar.update_rule(
        account_id, "rule_zoned_ip", predicate=":ip_address: != 'fe80::1'"
    )
    fixed = await parts.radar.get_rule(account_id, "rule_zoned_ip")
    assert fixed.invalid_reason is None
    async with core_engine.connect() as db:
        assert (await RuleRepository(db).get(account_id, fixed.id)) == replace(
            fixed, invalid_reason=None, disabled_reason=None
        )


async def test_a_recorded_reason_is_not_shown_for_a_rule_that_runs(
    parts: Parts, account_id: str, core_engine: AsyncEngine
) -> None:
    """A core of the version before 0069 changes a predicate without clearing the reason: the
    rule runs, and the listing does not say it does not."""
    async with core_engine.begin() as db:
        await RuleRepository(db).insert(
            Rule("rule_fixed", account_id, RuleAction.BLOCK, ":ip_address: = 'fe80::1'", 0, NOW,
                 disabled_reason="Disabled by remit's upgrade (core migration 0069): ...")
        )  # fmt: skip
    [listed], _ = await parts.radar.list_rules(account_id, limit=10)
    assert listed.invalid_reason is None
