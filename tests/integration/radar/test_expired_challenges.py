"""The worker's sweep of 3-D Secure challenges nobody answered: once expired, each ends exactly
as a late answer ends it (the intent back to `requires_payment_method`, its charge failed as
never sent to the network, `payment_intent.payment_failed` and no charge event, nothing in the
ledger, Radar counting a decline), once, whatever the cardholder does at the same moment.

Real PostgreSQL, the core's hooks (events, the ledger), Radar, and an in-process network."""

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.clock import FixedClock
from remit.payments.charges import Charge, ChargeStatus
from remit.payments.domain import CancellationReason, NewPaymentIntent, PaymentIntent, Status
from remit.payments.grpc import payment_intent_message
from remit.payments.idempotency import find
from remit.payments.service import ConfirmParams, Done, KeyedCall, PaymentsService, Replay
from remit.payments.wiring import payment_hooks
from remit.radar import expired_challenges
from remit.radar.authentication import Expiry, ThreeDSecureService, completion_key
from remit.radar.challenges import (
    CHALLENGE_LIFETIME,
    ChallengeRepository,
    ChallengeStatus,
    ExpiredChallenge,
    ThreeDSChallenge,
    expired_pending_query,
)
from remit.radar.expired_challenges import ExpiredChallengeSweep
from remit.radar.gate import Radar
from remit.radar.grpc import completion_response
from remit.radar.tables import radar_counters
from remit.webhooks.tables import events
from remit_api.payments.v1 import payments_pb2 as pb
from tests.integration.radar.test_radar_in_payments import Methods
from tests.support.fake_network import FakeNetwork
from tests.support.locks import until_a_session_waits_on_a_lock

pytestmark = pytest.mark.anyio

RETURN_URL = "https://shop.example/return"
LIFETIME_S = CHALLENGE_LIFETIME.total_seconds()


class Parts:
    """The payments service, the challenge page's service and the sweep, on one clock, with
    the hooks the core runs."""

    def __init__(self, engine: AsyncEngine, clock: FixedClock, *, batch: int = 100) -> None:
        self.engine = engine
        self.network = FakeNetwork()
        gate = Radar(challenge_base_url="http://remit.test", clock=clock)
        hooks = payment_hooks()
        self.payments = PaymentsService(
            engine,
            self.network,
            Methods(),
            present=payment_intent_message,
            hooks=hooks,
            clock=clock,
            radar=gate,
        )
        self.three_d_secure = ThreeDSecureService(
            engine, self.payments, Methods(), gate, hooks, clock=clock
        )
        self.sweep = ExpiredChallengeSweep(
            engine, self.three_d_secure, build=completion_response, clock=clock, batch=batch
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


async def waiting_for_its_challenge(
    parts: Parts, account_id: str, key: str
) -> tuple[PaymentIntent, str]:
    """A payment whose confirmation asked for 3-D Secure, and its challenge's id."""
    result = await parts.payments.create_payment_intent(
        KeyedCall(account_id, key, "CreatePaymentIntent", key.encode()),
        NewPaymentIntent(amount_minor=1000, currency="usd", return_url=RETURN_URL),
        lambda intent: intent.status.value.encode(),
        confirm=ConfirmParams(payment_method_id="pm_visa", request_three_d_secure="any"),
    )
    assert isinstance(result, Done)
    intent = result.value
    assert intent.status is Status.REQUIRES_ACTION
    assert intent.next_action is not None
    redirect = intent.next_action["redirect_to_url"]
    assert isinstance(redirect, dict)
    return intent, str(redirect["url"]).rsplit("/", 1)[1]


async def one_payment_each(
    parts: Parts, engine: AsyncEngine, count: int
) -> list[tuple[str, PaymentIntent, str]]:
    """`count` payments waiting for their challenges, each of an account of its own (Radar would
    block a card paying five times in a minute): (account id, intent, challenge id)."""
    waiting = []
    for _ in range(count):
        account_id = (await AccountsService(engine).create_account()).account.id
        waiting.append((account_id, *await waiting_for_its_challenge(parts, account_id, "pay")))
    return waiting


async def stored_challenge(parts: Parts, account_id: str, challenge_id: str) -> ThreeDSChallenge:
    """The challenge as stored (`get_challenge` shows an expired one expired whatever it holds)."""
    async with parts.engine.connect() as db:
        challenge = await ChallengeRepository(db).get(account_id, challenge_id)
    assert challenge is not None
    return challenge


async def charge_of(parts: Parts, account_id: str, intent: PaymentIntent) -> Charge:
    charge, _ = await parts.payments.get_charge(account_id, intent.latest_charge_id or "")
    return charge


async def events_of(parts: Parts, account_id: str, object_id: str) -> list[str]:
    async with parts.engine.connect() as db:
        rows = await db.execute(
            select(events.c.type)
            .where(
                events.c.account_id == account_id,
                events.c.data_object["id"].astext == object_id,
            )
            .order_by(events.c.created_at, events.c.seq)
        )
    return [row.type for row in rows]


async def ledger_rows_of(parts: Parts, account_id: str, charge_id: str) -> int:
    async with parts.engine.connect() as db:
        count = await db.scalar(
            text(
                "SELECT (SELECT count(*) FROM ledger_transactions WHERE account_id = :account "
                "AND metadata->>'charge' = :charge) + (SELECT count(*) FROM balance_transactions "
                "WHERE account_id = :account AND charge_id = :charge)"
            ),
            {"account": account_id, "charge": charge_id},
        )
    return int(count or 0)


async def declines_in_a_row(parts: Parts, account_id: str) -> int:
    """What Radar has counted for the card the payments here use."""
    async with parts.engine.connect() as db:
        count = await db.scalar(
            select(radar_counters.c.declines_in_a_row).where(
                radar_counters.c.account_id == account_id, radar_counters.c.key == "fp_visa"
            )
        )
    return int(count or 0)


def ending(charge: Charge) -> tuple[object, ...]:
    """What a charge says of how its attempt ended, but for what differs from attempt to
    attempt: its outcome's risk (Radar's of the attempt) and its challenge's id."""
    outcome = dict(charge.outcome or {})
    risk = charge.risk or {}
    assert (outcome.pop("risk_level"), outcome.pop("risk_score")) == (
        risk["risk_level"],
        risk["risk_score"],
    )
    authentication = dict(charge.authentication or {})
    assert str(authentication.pop("challenge_id")).startswith("tdsc_")
    return (
        charge.status,
        charge.failure_code,
        charge.failure_message,
        charge.decline_code,
        outcome,
        authentication,
        charge.network_result,
        charge.captured,
        charge.amount_captured_minor,
    )


def completion(reply: Done[tuple[ThreeDSChallenge, PaymentIntent]] | Replay) -> tuple[str, ...]:
    """What a press of a button shows the cardholder, and where it sends them."""
    assert isinstance(reply, Replay), reply
    assert reply.code == 0
    answer = pb.CompleteThreeDSecureChallengeResponse.FromString(reply.body)
    return (
        pb.ThreeDSecureChallengeStatus.Name(answer.challenge.status),
        pb.PaymentIntentStatus.Name(answer.payment_intent.status),
        answer.payment_intent.last_payment_error.code,
        answer.redirect_url.split("?", 1)[0],
    )


async def test_an_expired_challenge_nobody_answered_ends_as_a_late_answer_ends_it(
    parts: Parts, account_id: str, clock: FixedClock
) -> None:
    answered_late, late_id = await waiting_for_its_challenge(parts, account_id, "late")
    untouched, untouched_id = await waiting_for_its_challenge(parts, account_id, "untouched")
    clock.advance(LIFETIME_S + 60)
    late = await parts.three_d_secure.complete(
        account_id, late_id, passed=True, build=completion_response
    )
    assert isinstance(late, Done)
    assert await declines_in_a_row(parts, account_id) == 1

    assert await parts.sweep.run() == 1

    swept = await stored_challenge(parts, account_id, untouched_id)
    touched = await stored_challenge(parts, account_id, late_id)
    assert (swept.status, swept.completed_at) == (ChallengeStatus.EXPIRED, clock.now())
    assert touched.status is ChallengeStatus.EXPIRED
    after = await parts.payments.get_payment_intent(account_id, untouched.id)
    touched_after = late.value[1]
    assert after.status is Status.REQUIRES_PAYMENT_METHOD
    assert (after.status, after.last_payment_error, after.next_action) == (
        touched_after.status,
        touched_after.last_payment_error,
        touched_after.next_action,
    )
    charge = await charge_of(parts, account_id, untouched)
    assert charge.status is ChargeStatus.FAILED
    assert ending(charge) == ending(await charge_of(parts, account_id, answered_late))
    assert charge.updated_at == clock.now()
    for intent, charge_id in (
        (untouched, charge.id),
        (answered_late, answered_late.latest_charge_id),
    ):
        assert await events_of(parts, account_id, intent.id) == [
            "payment_intent.created",
            "payment_intent.requires_action",
            "payment_intent.payment_failed",
        ]
        assert await events_of(parts, account_id, str(charge_id)) == []
        assert await ledger_rows_of(parts, account_id, str(charge_id)) == 0
    assert await declines_in_a_row(parts, account_id) == 2
    assert parts.network.sent == []
    # A press of either button on a page opened before the hour was up now replays the end, as
    # a second press after a late answer does: the cardholder goes back to the merchant.
    for passed in (True, False):
        again = await parts.three_d_secure.complete(
            account_id, untouched_id, passed=passed, build=completion_response
        )
        assert completion(again) == (
            "THREE_D_SECURE_CHALLENGE_STATUS_EXPIRED",
            "PAYMENT_INTENT_STATUS_REQUIRES_PAYMENT_METHOD",
            "payment_intent_authentication_failure",
            RETURN_URL,
        )
        second_late = await parts.three_d_secure.complete(
            account_id, late_id, passed=passed, build=completion_response
        )
        assert completion(again) == completion(second_late)
    # Ended once: nothing is left for another run.
    assert await parts.sweep.run() == 0
    assert await declines_in_a_row(parts, account_id) == 2


async def test_a_challenge_still_within_its_hour_is_left_alone(
    parts: Parts, account_id: str, clock: FixedClock
) -> None:
    intent, challenge_id = await waiting_for_its_challenge(parts, account_id, "pay")
    clock.advance(LIFETIME_S - 1)
    assert await parts.sweep.run() == 0
    assert (await stored_challenge(parts, account_id, challenge_id)).status is (
        ChallengeStatus.PENDING
    )
    still = await parts.payments.get_payment_intent(account_id, intent.id)
    assert (still.status, still.next_action) == (Status.REQUIRES_ACTION, intent.next_action)
    assert (await charge_of(parts, account_id, intent)).status is ChargeStatus.PENDING
    assert await events_of(parts, account_id, intent.id) == [
        "payment_intent.created",
        "payment_intent.requires_action",
    ]
    async with parts.engine.connect() as db:
        assert await find(db, account_id, completion_key(challenge_id)) is None
    # Its hour up, it is the sweep's (as a late answer, from that instant on, can only fail).
    clock.advance(1)
    assert await parts.sweep.run() == 1
    assert (await parts.payments.get_payment_intent(account_id, intent.id)).status is (
        Status.REQUIRES_PAYMENT_METHOD
    )


async def test_a_challenge_whose_intent_moved_on_is_recorded_expired_and_nothing_else_changes(
    parts: Parts, account_id: str, clock: FixedClock
) -> None:
    """The cancel failed its charge already; the challenge waits `pending` with nothing to pay
    for (the page shows it expired). Left so, it would be read by every run for ever."""
    intent, challenge_id = await waiting_for_its_challenge(parts, account_id, "pay")
    canceled = await parts.payments.cancel_payment_intent(
        KeyedCall(account_id, "cancel", "CancelPaymentIntent", b"cancel"),
        intent.id,
        CancellationReason.ABANDONED,
        lambda i: i.status.value.encode(),
    )
    assert isinstance(canceled, Done)
    charge = await charge_of(parts, account_id, intent)
    assert charge.status is ChargeStatus.FAILED
    clock.advance(LIFETIME_S)
    event_types = await events_of(parts, account_id, intent.id)

    assert await parts.sweep.run() == 1

    closed = await stored_challenge(parts, account_id, challenge_id)
    assert (closed.status, closed.completed_at) == (ChallengeStatus.EXPIRED, clock.now())
    assert await parts.payments.get_payment_intent(account_id, intent.id) == canceled.value
    assert await charge_of(parts, account_id, intent) == charge
    assert await events_of(parts, account_id, intent.id) == event_types
    assert await events_of(parts, account_id, charge.id) == []
    assert await declines_in_a_row(parts, account_id) == 0
    async with parts.engine.connect() as db:
        assert await find(db, account_id, completion_key(challenge_id)) is None
        assert await ChallengeRepository(db).expired_pending(clock.now(), limit=10) == []


async def hold_challenge_row(
    engine: AsyncEngine, challenge_id: str, locked: asyncio.Event, release: asyncio.Event
) -> None:
    async with engine.begin() as db:
        await db.execute(
            text("SELECT 1 FROM three_d_secure_challenges WHERE id = :id FOR UPDATE"),
            {"id": challenge_id},
        )
        locked.set()
        await release.wait()


async def test_a_press_while_the_sweep_ends_the_challenge_waits_and_replays_its_end(
    parts: Parts, account_id: str, clock: FixedClock
) -> None:
    intent, challenge_id = await waiting_for_its_challenge(parts, account_id, "pay")
    clock.advance(LIFETIME_S)
    locked, release = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(hold_challenge_row(parts.engine, challenge_id, locked, release))
    await locked.wait()
    # The sweep has claimed the challenge's key and waits for the challenge.
    sweeping = asyncio.create_task(parts.sweep.run())
    await until_a_session_waits_on_a_lock(parts.engine, contender=sweeping)
    # The cardholder presses "Fail": the press waits for the sweep's key.
    pressing = asyncio.create_task(
        parts.three_d_secure.complete(
            account_id, challenge_id, passed=False, build=completion_response
        )
    )
    await until_a_session_waits_on_a_lock(parts.engine, contender=pressing, sessions=2)
    release.set()
    await holder
    assert await sweeping == 1
    assert completion(await pressing) == (
        "THREE_D_SECURE_CHALLENGE_STATUS_EXPIRED",
        "PAYMENT_INTENT_STATUS_REQUIRES_PAYMENT_METHOD",
        "payment_intent_authentication_failure",
        RETURN_URL,
    )
    assert (await stored_challenge(parts, account_id, challenge_id)).status is (
        ChallengeStatus.EXPIRED
    )
    assert await events_of(parts, account_id, intent.id) == [
        "payment_intent.created",
        "payment_intent.requires_action",
        "payment_intent.payment_failed",
    ]
    assert await declines_in_a_row(parts, account_id) == 1


async def test_the_sweep_leaves_a_challenge_the_cardholder_is_answering(
    parts: Parts, account_id: str, clock: FixedClock
) -> None:
    intent, challenge_id = await waiting_for_its_challenge(parts, account_id, "pay")
    clock.advance(LIFETIME_S)
    locked, release = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(hold_challenge_row(parts.engine, challenge_id, locked, release))
    await locked.wait()
    # The press has claimed the challenge's key and waits for the challenge.
    pressing = asyncio.create_task(
        parts.three_d_secure.complete(
            account_id, challenge_id, passed=False, build=completion_response
        )
    )
    await until_a_session_waits_on_a_lock(parts.engine, contender=pressing)
    assert await parts.sweep.run() == 0
    release.set()
    await holder
    pressed = await pressing
    assert isinstance(pressed, Done)
    # The cardholder's answer, recorded once: the challenge failed, not expired.
    assert (await stored_challenge(parts, account_id, challenge_id)).status is (
        ChallengeStatus.FAILED
    )
    assert await parts.sweep.run() == 0
    assert await events_of(parts, account_id, intent.id) == [
        "payment_intent.created",
        "payment_intent.requires_action",
        "payment_intent.payment_failed",
    ]
    assert await declines_in_a_row(parts, account_id) == 1


async def test_sweeps_and_presses_racing_end_each_challenge_once(
    parts: Parts, core_engine: AsyncEngine, clock: FixedClock
) -> None:
    """Two sweeps (two worker copies, had they no lock) and a press of either button on every
    challenge, all at once."""
    waiting = await one_payment_each(parts, core_engine, 6)
    clock.advance(LIFETIME_S)
    presses = [
        parts.three_d_secure.complete(
            account_id, challenge_id, passed=n % 2 == 0, build=completion_response
        )
        for n, (account_id, _, challenge_id) in enumerate(waiting)
    ]
    swept, pressed = await asyncio.gather(
        asyncio.gather(parts.sweep.run(), parts.sweep.run()), asyncio.gather(*presses)
    )
    assert sum(swept) <= len(waiting)
    # Every press got the challenge's one end: its own, or the sweep's replayed.
    assert all(isinstance(reply, Done | Replay) for reply in pressed)
    for account_id, intent, challenge_id in waiting:
        assert (await stored_challenge(parts, account_id, challenge_id)).status in (
            ChallengeStatus.EXPIRED,
            ChallengeStatus.FAILED,
        )
        assert (await events_of(parts, account_id, intent.id)).count(
            "payment_intent.payment_failed"
        ) == 1
        assert (await charge_of(parts, account_id, intent)).status is ChargeStatus.FAILED
        assert await declines_in_a_row(parts, account_id) == 1
    assert await parts.sweep.run() == 0


async def test_the_sweep_reads_a_bounded_batch_at_a_time_until_none_is_left(
    core_engine: AsyncEngine, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = Parts(core_engine, clock, batch=2)
    waiting = await one_payment_each(parts, core_engine, 5)
    clock.advance(LIFETIME_S)
    read = ChallengeRepository.expired_pending
    batches: list[tuple[int, int]] = []

    async def reading(
        self: ChallengeRepository,
        now: datetime,
        *,
        limit: int,
        after: tuple[datetime, str] | None = None,
    ) -> list[ExpiredChallenge]:
        due = await read(self, now, limit=limit, after=after)
        batches.append((limit, len(due)))
        return due

    monkeypatch.setattr(ChallengeRepository, "expired_pending", reading)
    assert await parts.sweep.run() == 5
    assert batches == [(2, 2), (2, 2), (2, 1)]
    for account_id, intent, _ in waiting:
        assert (await parts.payments.get_payment_intent(account_id, intent.id)).status is (
            Status.REQUIRES_PAYMENT_METHOD
        )


async def test_challenges_behind_a_full_batch_that_keeps_failing_are_ended(
    core_engine: AsyncEngine,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Challenges expired first whose end fails every time fill a whole batch: the run goes on
    past them to the challenges behind, leaves them for the next run, and says so once."""
    parts = Parts(core_engine, clock, batch=2)
    waiting = []
    for _ in range(3):
        waiting += await one_payment_each(parts, core_engine, 1)
        clock.advance(1)
    failing = {challenge_id for _, _, challenge_id in waiting[:2]}
    real = parts.three_d_secure.expire
    tried: list[str] = []

    async def fails_for_the_first(account_id: str, challenge_id: str, **kwargs: Any) -> Expiry:
        tried.append(challenge_id)
        if challenge_id in failing:
            raise RuntimeError("the challenge cannot be ended")
        return await real(account_id, challenge_id, **kwargs)

    monkeypatch.setattr(parts.three_d_secure, "expire", fails_for_the_first)
    clock.advance(LIFETIME_S)
    with caplog.at_level(logging.ERROR, logger="remit.radar.expired_challenges"):
        assert await parts.sweep.run() == 1
    assert tried == [challenge_id for _, _, challenge_id in waiting]
    said = [r.getMessage() for r in caplog.records if r.name == "remit.radar.expired_challenges"]
    assert len(said) == 1
    assert "2 left for the next run" in said[0]
    assert all(challenge_id in said[0] for challenge_id in failing)
    statuses = [
        (await stored_challenge(parts, account_id, challenge_id)).status
        for account_id, _, challenge_id in waiting
    ]
    assert statuses == [ChallengeStatus.PENDING, ChallengeStatus.PENDING, ChallengeStatus.EXPIRED]
    # The next run tries them again.
    tried.clear()
    assert await parts.sweep.run() == 0
    assert tried == [challenge_id for _, _, challenge_id in waiting[:2]]


async def test_the_sweeps_read_goes_through_the_index_of_pending_challenges(
    core_engine: AsyncEngine, account_id: str
) -> None:
    now = datetime.now(UTC)
    async with core_engine.begin() as db:
        # 5,000 challenges of yesterday, all but one in a thousand ended.
        await db.execute(
            text(
                "INSERT INTO three_d_secure_challenges (id, account_id, payment_intent_id, "
                "charge_id, amount_minor, currency, brand, last4, status, created_at, "
                "expires_at) SELECT 'tdsc_plan' || n, :account, 'pi_' || n, 'ch_' || n, 1000, "
                "'usd', 'visa', '4242', CASE WHEN n % 1000 = 0 THEN 'pending' ELSE 'expired' END, "
                ":at, :at + interval '1 hour' FROM generate_series(1, 5000) AS n"
            ),
            {"account": account_id, "at": now - timedelta(days=1)},
        )
        await db.execute(text("ANALYZE three_d_secure_challenges"))
    query = expired_pending_query(now, limit=expired_challenges.BATCH).compile(
        dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
        compile_kwargs={"literal_binds": True},
    )
    async with core_engine.connect() as db:
        plan = (await db.execute(text(f"EXPLAIN {query}"))).scalars().all()
        due = await ChallengeRepository(db).expired_pending(now, limit=expired_challenges.BATCH)
    assert sorted(challenge.id for challenge in due) == sorted(
        f"tdsc_plan{n}" for n in (1000, 2000, 3000, 4000, 5000)
    )
    assert any("ix_three_d_secure_challenges_pending_expiry" in line for line in plan), plan
    assert not any("Seq Scan" in line for line in plan), plan
