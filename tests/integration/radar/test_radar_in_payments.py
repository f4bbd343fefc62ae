"""Radar inside the payments service, against a real PostgreSQL and an in-process network."""

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.accounts.tables import accounts
from remit.core.clock import FixedClock
from remit.core.errors import RemitError, not_found
from remit.payments.charges import CardSnapshot, ChargeStatus
from remit.payments.domain import NewPaymentIntent, PaymentIntent, Status
from remit.payments.grpc import payment_intent_message
from remit.payments.ports import ChargeableCard, HookChain
from remit.payments.service import ConfirmParams, Done, KeyedCall, PaymentsService
from remit.radar.authentication import ThreeDSecureService
from remit.radar.challenges import ChallengeStatus, ThreeDSChallenge
from remit.radar.domain import RuleAction
from remit.radar.gate import Radar
from remit.radar.service import RadarService
from remit.radar.tables import radar_counters, radar_rules
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio

FINGERPRINTS = {
    "pm_visa": "fp_visa",
    "pm_other": "fp_other",
    "pm_declined": "fp_declined",
    # One test card, saved twice: its issuer declines it for insufficient funds, then, once
    # the account has money again, approves it. Made from Stripe test ids, so that the model
    # scores it normal whatever its history and only the rules decide.
    "pm_broke": "fp_topped_up",
    "pm_topped_up": "fp_topped_up",
    "pm_elevated": "fp_elevated",
}
TEST_IDS = {
    "pm_elevated": "pm_card_riskLevelElevated",
    "pm_broke": "pm_card_visa_chargeDeclinedInsufficientFunds",
    "pm_topped_up": "pm_card_visa",
}
TOKENS = {
    "pm_visa": "visa",
    "pm_other": "visa",
    "pm_declined": "declined",
    "pm_broke": "insufficient",
    "pm_topped_up": "visa",
    "pm_elevated": "visa",
}


class Methods:
    def card_refused(self, account_id: str, vault_token: str) -> None:
        raise AssertionError("no card is refused here")

    async def attempt_vault_token(self, account_id: str, payment_method_id: str) -> str:
        return (await self.chargeable_card(account_id, payment_method_id)).vault_token

    async def attempt_card(self, account_id: str, payment_method_id: str) -> ChargeableCard:
        return await self.chargeable_card(account_id, payment_method_id)

    async def chargeable_card(self, account_id: str, payment_method_id: str) -> ChargeableCard:
        if payment_method_id not in FINGERPRINTS:
            raise not_found("payment_method", payment_method_id)
        return ChargeableCard(
            payment_method_id=payment_method_id,
            vault_token=TOKENS[payment_method_id],
            test_id=TEST_IDS.get(payment_method_id),
            card=CardSnapshot(
                brand="visa",
                last4="4242",
                exp_month=12,
                exp_year=2034,
                fingerprint=FINGERPRINTS[payment_method_id],
                funding="credit",
                country="US",
            ),
        )


class Parts:
    def __init__(self, engine: AsyncEngine, clock: FixedClock) -> None:
        self.network = FakeNetwork()
        self.gate = Radar(challenge_base_url="http://remit.test", clock=clock)
        self.payments = PaymentsService(
            engine,
            self.network,
            Methods(),
            present=payment_intent_message,
            clock=clock,
            radar=self.gate,
        )
        self.radar = RadarService(engine, clock=clock)
        self.three_d_secure = ThreeDSecureService(
            engine, self.payments, Methods(), self.gate, HookChain(), clock=clock
        )


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def parts(core_engine: AsyncEngine, clock: FixedClock) -> Parts:
    return Parts(core_engine, clock)


@pytest.fixture
async def account_id(core_engine: AsyncEngine) -> str:
    return (await AccountsService(core_engine).create_account()).account.id


def respond(intent: PaymentIntent) -> bytes:
    return intent.status.value.encode()


async def pay(
    parts: Parts,
    account_id: str,
    key: str,
    *,
    pm: str = "pm_visa",
    amount: int = 1000,
    metadata: dict[str, str] | None = None,
    **kw: object,
) -> PaymentIntent:
    result = await parts.payments.create_payment_intent(
        KeyedCall(account_id, key, "CreatePaymentIntent", f"{key}{pm}{amount}".encode()),
        NewPaymentIntent(
            amount_minor=amount,
            currency="usd",
            return_url="https://shop/r",
            metadata=metadata or {},
        ),
        respond,
        confirm=ConfirmParams(payment_method_id=pm, **kw),  # type: ignore[arg-type]
    )
    assert isinstance(result, Done)
    return result.value


async def test_the_nth_rapid_attempt_on_one_card_crosses_the_rule_threshold_exactly(
    parts: Parts, account_id: str
) -> None:
    rule = await parts.radar.create_rule(
        account_id, RuleAction.BLOCK, ":total_charges_per_card_number_hourly: > 3"
    )
    for n in (1, 2, 3):
        assert (await pay(parts, account_id, f"ok{n}")).status is Status.SUCCEEDED
    with pytest.raises(RemitError) as raised:
        await pay(parts, account_id, "blocked4")
    assert raised.value.decline_code == "fraudulent"
    charge, _ = await parts.payments.get_charge(account_id, raised.value.charge or "")
    assert charge.outcome is not None
    assert charge.outcome["rule"] == rule.id
    # The blocked attempt never reached the network; another card is unaffected.
    assert charge.id not in parts.network.sent
    assert (await pay(parts, account_id, "other", pm="pm_other")).status is Status.SUCCEEDED


async def test_the_elevated_test_card_stays_elevated_and_authorized_however_often_it_pays(
    parts: Parts, account_id: str
) -> None:
    """Stripe documents pm_card_riskLevelElevated as authorized with risk level elevated: its
    velocity, a large amount or a foreign IP never carry it into the built-in highest block."""
    payments = [
        await pay(parts, account_id, f"e{n}", pm="pm_elevated", amount=5000) for n in range(8)
    ]
    payments.append(
        await pay(
            parts, account_id, "big", pm="pm_elevated", amount=500000, metadata={"ip_country": "FR"}
        )
    )
    for intent in payments:
        assert intent.status is Status.SUCCEEDED
        charge, _ = await parts.payments.get_charge(account_id, intent.latest_charge_id or "")
        assert charge.outcome is not None
        assert (charge.outcome["type"], charge.outcome["risk_level"]) == ("authorized", "elevated")
        assert charge.outcome["risk_score"] in range(65, 75)


async def test_a_changed_rule_decides_the_very_next_payment(parts: Parts, account_id: str) -> None:
    """Rules stay compiled between payments; a change to one is in force at once."""
    rule = await parts.radar.create_rule(account_id, RuleAction.BLOCK, ":amount_in_usd: > 50")
    assert (await pay(parts, account_id, "small")).status is Status.SUCCEEDED
    await parts.radar.update_rule(account_id, rule.id, predicate=":amount_in_usd: > 5")
    with pytest.raises(RemitError) as raised:
        await pay(parts, account_id, "now_blocked")
    charge, _ = await parts.payments.get_charge(account_id, raised.value.charge or "")
    assert charge.outcome is not None
    assert charge.outcome["rule"] == rule.id
    await parts.radar.update_rule(account_id, rule.id, action=RuleAction.REVIEW)
    reviewed = await pay(parts, account_id, "now_reviewed")
    assert reviewed.review_id is not None


async def test_attempts_older_than_the_hour_leave_the_hourly_window(
    parts: Parts, account_id: str, clock: FixedClock
) -> None:
    await parts.radar.create_rule(
        account_id, RuleAction.BLOCK, ":total_charges_per_card_number_hourly: > 2"
    )
    await pay(parts, account_id, "a1")
    await pay(parts, account_id, "a2")
    clock.advance(61 * 60)
    assert (await pay(parts, account_id, "a3")).status is Status.SUCCEEDED


async def test_concurrent_attempts_on_one_card_are_each_counted_once(
    parts: Parts, account_id: str, core_engine: AsyncEngine
) -> None:
    # Six attempts in a burst: the model blocks the later ones, and every one is counted.
    outcomes = await asyncio.gather(
        *(pay(parts, account_id, f"c{n}") for n in range(6)), return_exceptions=True
    )
    assert any(isinstance(o, RemitError) and o.decline_code == "fraudulent" for o in outcomes)
    async with core_engine.connect() as db:
        minutes = (
            await db.execute(
                select(radar_counters.c.attempts_by_minute).where(
                    radar_counters.c.account_id == account_id, radar_counters.c.key == "fp_visa"
                )
            )
        ).scalar_one()
    assert sum(minutes) == 6


async def test_declines_in_a_row_are_counted_and_reset_by_an_approval(
    parts: Parts, account_id: str
) -> None:
    await parts.radar.create_rule(
        account_id, RuleAction.BLOCK, ":declined_charges_in_a_row_per_card_number: >= 2"
    )
    for n in (1, 2):
        with pytest.raises(RemitError) as declined:
            await pay(parts, account_id, f"d{n}", pm="pm_declined")
        assert declined.value.decline_code == "generic_decline"
    with pytest.raises(RemitError) as blocked:
        await pay(parts, account_id, "d3", pm="pm_declined")
    assert blocked.value.decline_code == "fraudulent"


async def _card_counter(engine: AsyncEngine, account_id: str, fingerprint: str) -> tuple[int, int]:
    """The card's (declines in a row, declines in the day's ring) as stored."""
    async with engine.connect() as db:
        row = (
            await db.execute(
                select(radar_counters.c.declines_in_a_row, radar_counters.c.declines_by_hour).where(
                    radar_counters.c.account_id == account_id,
                    radar_counters.c.key == fingerprint,
                )
            )
        ).one()
    return row.declines_in_a_row, sum(row.declines_by_hour)


async def test_a_block_on_declines_in_a_row_neither_feeds_itself_nor_lasts_for_ever(
    parts: Parts, account_id: str, clock: FixedClock, core_engine: AsyncEngine
) -> None:
    rule = await parts.radar.create_rule(
        account_id, RuleAction.BLOCK, ":declined_charges_in_a_row_per_card_number: >= 3"
    )
    for n in (1, 2, 3):
        with pytest.raises(RemitError) as declined:
            await pay(parts, account_id, f"broke{n}", pm="pm_broke")
        assert declined.value.decline_code == "insufficient_funds"
        clock.advance(60)
    # The account has money again, but the rule blocks the card for now.
    for key in ("blocked1", "blocked2"):
        with pytest.raises(RemitError) as blocked:
            await pay(parts, account_id, key, pm="pm_topped_up")
        charge, _ = await parts.payments.get_charge(account_id, blocked.value.charge or "")
        assert charge.outcome is not None
        assert (charge.outcome["type"], charge.outcome["rule"]) == ("blocked", rule.id)
    # Radar's own blocks are no declines of the card: only the issuer's three count.
    assert await _card_counter(core_engine, account_id, "fp_topped_up") == (3, 3)

    # A day after the last decline (the blocks since do not prolong it) the streak has lapsed.
    clock.advance(24 * 3600 - 3 * 60)
    with pytest.raises(RemitError):
        await pay(parts, account_id, "too_soon", pm="pm_topped_up")
    clock.advance(3 * 60)
    paid = await pay(parts, account_id, "paid", pm="pm_topped_up")
    assert paid.status is Status.SUCCEEDED
    assert (await _card_counter(core_engine, account_id, "fp_topped_up"))[0] == 0


async def test_with_radar_off_nothing_is_scored_counted_or_blocked(
    parts: Parts, account_id: str, core_engine: AsyncEngine
) -> None:
    await parts.radar.create_rule(account_id, RuleAction.BLOCK, ":amount_in_usd: > 0")
    async with core_engine.begin() as db:
        await db.execute(
            update(accounts).where(accounts.c.id == account_id).values(radar_enabled=False)
        )
    intent = await pay(parts, account_id, "off")
    assert intent.status is Status.SUCCEEDED
    charge, _ = await parts.payments.get_charge(account_id, intent.latest_charge_id or "")
    assert charge.outcome is not None
    assert (charge.outcome["risk_level"], charge.outcome["risk_score"]) == ("not_assessed", None)
    async with core_engine.connect() as db:
        count = await db.execute(
            select(func.count())
            .select_from(radar_counters)
            .where(radar_counters.c.account_id == account_id)
        )
    assert count.scalar_one() == 0


async def test_the_decision_is_stored_with_the_attempt_before_the_network_is_asked(
    parts: Parts, account_id: str
) -> None:
    parts.network.faults = ["before", "before", "before", "before"]
    with pytest.raises(RemitError):
        await pay(parts, account_id, "crashy", amount=5000)
    # The attempt waits at attempt_created with Radar's verdict already on the charge.
    intents, _ = await parts.payments.list_payment_intents(account_id, limit=1)
    charge, _ = await parts.payments.get_charge(account_id, intents[0].latest_charge_id or "")
    assert charge.status is ChargeStatus.PENDING
    assert charge.risk is not None
    assert charge.risk["action"] == "allow"
    assert isinstance(charge.risk["risk_score"], int)


async def _challenge_of(parts: Parts, account_id: str, intent: PaymentIntent) -> ThreeDSChallenge:
    assert intent.next_action is not None
    redirect = intent.next_action["redirect_to_url"]
    assert isinstance(redirect, dict)
    challenge_id = str(redirect["url"]).rsplit("/", 1)[1]
    assert str(redirect["url"]).startswith(f"http://remit.test/three_d_secure/{account_id}/")
    return await parts.three_d_secure.get_challenge(account_id, challenge_id)


def _built(challenge: ThreeDSChallenge, intent: PaymentIntent) -> bytes:
    return f"{challenge.status.value}:{intent.status.value}".encode()


async def test_a_completed_challenge_authorizes_once_even_when_answered_twice(
    parts: Parts, account_id: str
) -> None:
    await parts.radar.create_rule(
        account_id, RuleAction.REQUEST_THREE_D_SECURE, ":amount_in_usd: > 500"
    )
    intent = await pay(parts, account_id, "big", amount=60000)
    assert intent.status is Status.REQUIRES_ACTION
    assert parts.network.sent == []
    challenge = await _challenge_of(parts, account_id, intent)
    first = await parts.three_d_secure.complete(account_id, challenge.id, passed=True, build=_built)
    assert isinstance(first, Done)
    assert first.value[1].status is Status.SUCCEEDED
    again = await parts.three_d_secure.complete(
        account_id, challenge.id, passed=False, build=_built
    )
    assert not isinstance(again, Done)
    assert again.body == b"succeeded:succeeded"
    assert parts.network.sent == [f"{intent.latest_charge_id}_3ds"]
    charge, _ = await parts.payments.get_charge(account_id, intent.latest_charge_id or "")
    assert charge.authentication is not None
    assert charge.authentication["result"] == "authenticated"


async def test_an_expired_challenge_can_only_fail(
    parts: Parts, account_id: str, clock: FixedClock
) -> None:
    await parts.radar.create_rule(
        account_id, RuleAction.REQUEST_THREE_D_SECURE, ":amount_in_usd: > 500"
    )
    intent = await pay(parts, account_id, "late", amount=60000)
    challenge = await _challenge_of(parts, account_id, intent)
    clock.advance(2 * 3600)
    assert (await parts.three_d_secure.get_challenge(account_id, challenge.id)).status is (
        ChallengeStatus.EXPIRED
    )
    result = await parts.three_d_secure.complete(
        account_id, challenge.id, passed=True, build=_built
    )
    assert isinstance(result, Done)
    answered, after = result.value
    assert answered.status is ChallengeStatus.EXPIRED
    assert after.status is Status.REQUIRES_PAYMENT_METHOD
    assert after.last_payment_error is not None
    assert after.last_payment_error["code"] == "payment_intent_authentication_failure"
    assert parts.network.sent == []


async def test_off_session_payments_are_never_sent_to_a_challenge(
    parts: Parts, account_id: str
) -> None:
    await parts.radar.create_rule(
        account_id, RuleAction.REQUEST_THREE_D_SECURE, ":amount_in_usd: > 500"
    )
    intent = await pay(parts, account_id, "offs", amount=60000, off_session=True)
    assert intent.status is Status.SUCCEEDED


async def test_a_completion_cut_off_before_the_network_answers_resumes_and_authorizes_once(
    parts: Parts, account_id: str
) -> None:
    intent = await pay(parts, account_id, "forced", request_three_d_secure="any")
    assert intent.status is Status.REQUIRES_ACTION
    challenge = await _challenge_of(parts, account_id, intent)
    # The authorization happens but its answer is lost, and the look-ups fail too.
    parts.network.faults = ["after"]
    parts.network.lookup_faults = 3
    with pytest.raises(RemitError):
        await parts.three_d_secure.complete(account_id, challenge.id, passed=True, build=_built)
    # The answer is recorded; the retry resumes at attempt_created and settles by reference.
    resumed = await parts.three_d_secure.complete(
        account_id, challenge.id, passed=True, build=_built
    )
    assert isinstance(resumed, Done)
    assert resumed.value[1].status is Status.SUCCEEDED
    reference = f"{intent.latest_charge_id}_3ds"
    # Looked up by its reference and found: never sent a second time.
    assert parts.network.sent == [reference]
    assert parts.network.looked_up[-1] == reference
    assert list(parts.network.authorizations) == [reference]


async def test_a_stored_rule_that_no_longer_compiles_never_fails_a_payment(
    parts: Parts, account_id: str, core_engine: AsyncEngine
) -> None:
    """As saved by an older parser without a nesting limit: a block rule that would match
    every payment, had it compiled."""
    rule = await parts.radar.create_rule(account_id, RuleAction.BLOCK, ":risk_score: > -1")
    deep = "(" * 330 + ":risk_score: > -1" + ")" * 330
    async with core_engine.begin() as db:
        await db.execute(
            update(radar_rules).where(radar_rules.c.id == rule.id).values(predicate=deep)
        )
    assert (await pay(parts, account_id, "deep")).status is Status.SUCCEEDED
