"""Radar's history: every change to a rule, a value list or an item is recorded with who asked,
what it was before and after, and a rule's version; a charge keeps the version of the rule that
decided it and shows the rule as it was then (remit.radar.history, remit.radar.decided)."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.clock import FixedClock
from remit.core.errors import RemitError
from remit.payments.related import database_fetch
from remit.payments.risk import RiskVerdict
from remit.radar.domain import ItemType, RuleAction
from remit.radar.history import Actor, Change
from remit.radar.service import RadarService
from tests.integration.radar.test_radar_in_payments import Parts, pay
from tests.support.radar_cli import radar_cli
from versions.v2017_02_14 import RULE_OF_CHARGE

pytestmark = pytest.mark.anyio

ANN = Actor(key_id="key_ann", request_id="req_1")
BOB = Actor(key_id="key_bob", request_id="req_2")


@pytest.fixture
async def account_id(core_engine: AsyncEngine) -> str:
    return (await AccountsService(core_engine).create_account()).account.id


@pytest.fixture
def radar(core_engine: AsyncEngine) -> RadarService:
    # The system clock: changes made one after the other are listed in that order.
    return RadarService(core_engine)


def _seen(change: Change) -> tuple[object, ...]:
    return (
        change.changed_by,
        change.request_id,
        change.action.value,
        change.object_type,
        change.object_id,
        change.rule_version,
        change.before,
        change.after,
    )


async def _oldest_first(radar: RadarService, account_id: str, **kw: str) -> list[Change]:
    changes, more = await radar.list_changes(account_id, limit=100, **kw)
    assert not more
    return changes[::-1]


async def test_each_change_to_a_rule_is_recorded_with_who_asked_and_its_version(
    radar: RadarService, account_id: str
) -> None:
    first = await radar.create_rule(account_id, RuleAction.REVIEW, ":risk_score: > 70")
    rule = await radar.create_rule(account_id, RuleAction.BLOCK, ":risk_score: > 90", actor=ANN)
    changed = await radar.update_rule(account_id, rule.id, predicate=":risk_score: > 80", actor=BOB)
    assert changed.version == 2
    moved = await radar.update_rule(account_id, rule.id, position=0, actor=ANN)
    assert (moved.position, moved.version) == (0, 2)
    # Nothing changes: nothing is recorded.
    await radar.update_rule(account_id, rule.id, action=RuleAction.BLOCK, actor=ANN)
    await radar.delete_rule(account_id, rule.id, actor=BOB)

    state = {"action": "block", "predicate": ":risk_score: > 90", "position": 1}
    v2 = {**state, "predicate": ":risk_score: > 80"}
    assert [_seen(c) for c in await _oldest_first(radar, account_id, object_id=rule.id)] == [
        ("key_ann", "req_1", "created", "rule", rule.id, 1, None, state),
        ("key_bob", "req_2", "updated", "rule", rule.id, 2, state, v2),
        ("key_ann", "req_1", "updated", "rule", rule.id, 2, v2, {**v2, "position": 0}),
        ("key_bob", "req_2", "deleted", "rule", rule.id, 2, {**v2, "position": 0}, None),
    ]
    # A caller that names no key (remit's own) is recorded as remit.
    (made,) = await _oldest_first(radar, account_id, object_id=first.id)
    assert (made.changed_by, made.request_id) == ("remit", None)


async def test_each_change_to_a_list_and_its_items_is_recorded_and_a_refusal_is_not(
    radar: RadarService, account_id: str
) -> None:
    vips = await radar.create_value_list(
        account_id, alias="vips", name="VIPs", item_type=ItemType.EMAIL, actor=ANN
    )
    ada = await radar.add_item(account_id, vips.id, "ada@example.com", actor=ANN)
    with pytest.raises(RemitError):
        await radar.add_item(account_id, vips.id, "ADA@example.com", actor=BOB)
    with pytest.raises(RemitError):
        await radar.create_rule(account_id, RuleAction.BLOCK, ":amount: in @vips", actor=BOB)
    await radar.add_item(account_id, vips.id, "grace@example.com", actor=BOB)
    await radar.remove_item(account_id, ada.id, actor=BOB)
    await radar.delete_value_list(account_id, vips.id, actor=ANN)

    listed = {"alias": "vips", "name": "VIPs", "item_type": "email", "metadata": {}}
    changes = await _oldest_first(radar, account_id, object_id=vips.id)
    assert [(c.changed_by, c.action.value, c.object_type, c.before, c.after) for c in changes] == [
        ("key_ann", "created", "radar.value_list", None, listed),
        (
            "key_ann",
            "created",
            "radar.value_list_item",
            None,
            {"value": "ada@example.com", "value_list": vips.id},
        ),
        (
            "key_bob",
            "created",
            "radar.value_list_item",
            None,
            {"value": "grace@example.com", "value_list": vips.id},
        ),
        (
            "key_bob",
            "deleted",
            "radar.value_list_item",
            {"value": "ada@example.com", "value_list": vips.id},
            None,
        ),
        # Its remaining item went with it.
        ("key_ann", "deleted", "radar.value_list", {**listed, "items": 1}, None),
    ]
    assert [c.object_id for c in changes][1] == ada.id
    # The whole account's history, newest first, pages by change id.
    first_page, more = await radar.list_changes(account_id, limit=2)
    assert more
    rest, _ = await radar.list_changes(account_id, limit=100, starting_after=first_page[-1].id)
    assert [c.id for c in first_page + rest] == [c.id for c in changes[::-1]]


async def test_a_list_and_an_item_were_created_by_who_asked_as_the_history_says(
    radar: RadarService, account_id: str
) -> None:
    vips = await radar.create_value_list(
        account_id, alias="vips", name="VIPs", item_type=ItemType.EMAIL, actor=ANN
    )
    grace = await radar.add_item(account_id, vips.id, "grace@example.com", actor=BOB)
    # A caller that names no key is remit itself, as in the history.
    ada = await radar.add_item(account_id, vips.id, "ada@example.com")
    assert (vips.created_by, grace.created_by, ada.created_by) == ("key_ann", "key_bob", "remit")
    stored, items, _ = await radar.get_value_list(account_id, vips.id)
    assert stored.created_by == "key_ann"
    assert {item.value: item.created_by for item in items} == {
        "grace@example.com": "key_bob",
        "ada@example.com": "remit",
    }
    changes = await _oldest_first(radar, account_id, object_id=vips.id)
    assert [c.changed_by for c in changes] == ["key_ann", "key_bob", "remit"]


async def test_a_charge_keeps_the_rule_as_it_decided_it(
    core_engine: AsyncEngine, account_id: str
) -> None:
    parts = Parts(core_engine, FixedClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC)))
    rule = await parts.radar.create_rule(account_id, RuleAction.REVIEW, ":amount_in_usd: > 5")
    intent = await pay(parts, account_id, "reviewed")
    charge, _ = await parts.payments.get_charge(account_id, intent.latest_charge_id or "")
    verdict = RiskVerdict.from_json(charge.risk)
    assert verdict.rule_id == rule.id
    assert verdict.explanation["rule_version"] == 1

    await parts.radar.update_rule(account_id, rule.id, predicate=":amount_in_usd: > 500")
    now = await parts.radar.get_rule(account_id, rule.id)
    assert (now.predicate, now.version) == (":amount_in_usd: > 500", 2)
    then = await parts.radar.get_rule(account_id, rule.id, decided_charge=charge.id)
    assert (then.id, then.action, then.predicate, then.version) == (
        rule.id,
        RuleAction.REVIEW,
        ":amount_in_usd: > 5",
        1,
    )
    # As events rendered for versions before 2017-02-14 show it, from the core database.
    fetch = database_fetch(core_engine, account_id, as_of=datetime.now(UTC))
    key = f"{charge.id} {rule.id}"
    found = (await fetch(RULE_OF_CHARGE, [key]))[key]
    assert [(r["predicate"], r["version"]) for r in found.data] == [(":amount_in_usd: > 5", 1)]

    with pytest.raises(RemitError) as missing:
        await parts.radar.get_rule(account_id, rule.id, decided_charge="ch_nope")
    assert (missing.value.code, missing.value.param) == ("resource_missing", "decided_charge")


async def test_the_rules_of_a_page_of_charges_are_found_at_once_each_as_it_decided_its_charge(
    core_engine: AsyncEngine, account_id: str
) -> None:
    """GetRules, for a page of charges at an old API version: the rule that decided two charges
    under two texts shows each of them, a rule asked by id alone shows as it is now."""
    parts = Parts(core_engine, FixedClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC)))
    rule = await parts.radar.create_rule(account_id, RuleAction.REVIEW, ":amount_in_usd: > 5")
    first = (await pay(parts, account_id, "first")).latest_charge_id or ""
    await parts.radar.update_rule(account_id, rule.id, predicate=":amount_in_usd: > 6")
    second = (await pay(parts, account_id, "second")).latest_charge_id or ""
    await parts.radar.update_rule(account_id, rule.id, predicate=":amount_in_usd: > 500")
    gone = await parts.radar.create_rule(account_id, RuleAction.BLOCK, ":amount_in_usd: > 9000")
    await parts.radar.delete_rule(account_id, gone.id)

    now, then = await parts.radar.get_rules(
        account_id,
        [rule.id, gone.id],
        [(first, rule.id), (second, rule.id), (first, rule.id), ("ch_nope", rule.id),
         (first, gone.id)],
    )  # fmt: skip
    assert [(r.id, r.predicate, r.version) for r in now] == [(rule.id, ":amount_in_usd: > 500", 3)]
    # Each once, in the order asked; a charge the account does not have shows the rule as it
    # is; a rule deleted since is left out.
    assert [(charge, r.id, r.predicate, r.version) for charge, r in then] == [
        (first, rule.id, ":amount_in_usd: > 5", 1),
        (second, rule.id, ":amount_in_usd: > 6", 2),
        ("ch_nope", rule.id, ":amount_in_usd: > 500", 3),
    ]

    with pytest.raises(RemitError, match="At most 100"):
        await parts.radar.get_rules(account_id, [rule.id] * 50, [(first, rule.id)] * 51)


async def test_a_charge_decided_before_versions_were_kept_shows_the_text_it_kept(
    core_engine: AsyncEngine, account_id: str
) -> None:
    """Its verdict names no version: version 1 while the rule has not changed, unknown after."""
    parts = Parts(core_engine, FixedClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC)))
    rule = await parts.radar.create_rule(account_id, RuleAction.REVIEW, ":amount_in_usd: > 5")
    intent = await pay(parts, account_id, "reviewed")
    charge_id = intent.latest_charge_id or ""
    async with core_engine.begin() as db:
        await db.execute(
            text("UPDATE charges SET risk = risk #- '{explanation,rule_version}' WHERE id = :id"),
            {"id": charge_id},
        )
    shown = await parts.radar.get_rule(account_id, rule.id, decided_charge=charge_id)
    assert (shown.predicate, shown.version) == (":amount_in_usd: > 5", 1)
    await parts.radar.update_rule(account_id, rule.id, predicate=":amount_in_usd: > 500")
    shown = await parts.radar.get_rule(account_id, rule.id, decided_charge=charge_id)
    assert (shown.predicate, shown.version) == (":amount_in_usd: > 5", None)


async def test_the_command_line_prints_the_history_with_the_key_that_asked(
    core_engine: AsyncEngine,
    radar: RadarService,
    account_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with radar_cli(core_engine, account_id, tmp_path, monkeypatch, key_id="key_ops") as run:
        await run(radar_group="rules", radar_command="add", rule="Block if :risk_score: > 90",
                  position=None)  # fmt: skip
        (rule,) = (await radar.list_rules(account_id, limit=10))[0]
        await radar.update_rule(account_id, rule.id, predicate=":risk_score: > 80", actor=ANN)
        await run(radar_group="rules", radar_command="remove", rule_id=rule.id)
        printed = await run(radar_group="history", radar_command="list", object=rule.id, limit=100)
        newest = await run(radar_group="history", radar_command="list", object=None, limit=1)
    lines = [line.split("\t") for line in printed.splitlines()]
    assert [line[2:7] for line in lines] == [
        ["key_ops", "deleted", "rule", rule.id, "v2"],
        ["key_ann", "updated", "rule", rule.id, "v2"],
        ["key_ops", "created", "rule", rule.id, "v1"],
    ]
    before, after = lines[1][7].split(" -> ")
    assert json.loads(before)["predicate"] == ":risk_score: > 90"
    assert json.loads(after)["predicate"] == ":risk_score: > 80"
    assert json.loads(lines[0][7]) == {
        "action": "block",
        "predicate": ":risk_score: > 80",
        "position": 0,
    }
    assert newest.splitlines() == printed.splitlines()[:1]
