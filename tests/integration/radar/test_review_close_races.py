"""An approval racing a close that refunds or cancels the payment: the close records how it
will close the review before it moves any money, and an approval is refused until it has
closed, or until its refund or cancel has certainly failed. Real PostgreSQL, Radar, and an
in-process network whose refunds can be held at the acquirer."""

import asyncio
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.payments import idempotency
from remit.payments.domain import CaptureMethod, NewPaymentIntent, PaymentIntent
from remit.payments.grpc import payment_intent_message
from remit.payments.idempotency import KeyRecord
from remit.payments.keyed import Done, KeyedCall, Replay
from remit.payments.network import OperationOutcome
from remit.payments.service import ConfirmParams, PaymentsService
from remit.radar.domain import RuleAction
from remit.radar.refusals import refusal_call
from remit.radar.reviewing import ReviewsService
from remit.radar.reviews import ClosedReason, ReviewRepository
from tests.integration.radar.test_radar_in_payments import Methods, Parts, respond
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio


@dataclass
class HeldRefunds(FakeNetwork):
    """Holds every refund at the acquirer until `release` is set; `reached` says one is
    there."""

    reached: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def refund(
        self, *, authorization_id: str, amount_minor: int, reference: str
    ) -> OperationOutcome:
        self.reached.set()
        await self.release.wait()
        return await super().refund(
            authorization_id=authorization_id, amount_minor=amount_minor, reference=reference
        )


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def network() -> HeldRefunds:
    held = HeldRefunds()
    held.release.set()  # refunds go through unless a test holds them
    return held


@pytest.fixture
def parts(core_engine: AsyncEngine, clock: FixedClock, network: HeldRefunds) -> Parts:
    parts = Parts(core_engine, clock)
    parts.network = network
    parts.payments = PaymentsService(
        core_engine,
        network,
        Methods(),
        present=payment_intent_message,
        clock=clock,
        radar=parts.gate,
    )
    return parts


@pytest.fixture
def reviews(core_engine: AsyncEngine, parts: Parts, clock: FixedClock) -> ReviewsService:
    return ReviewsService(core_engine, parts.payments, clock=clock)


@pytest.fixture
async def account_id(parts: Parts, core_engine: AsyncEngine) -> str:
    account = (await AccountsService(core_engine).create_account()).account.id
    await parts.radar.create_rule(account, RuleAction.REVIEW, ":amount_in_usd: >= 300")
    return account


async def _in_review(parts: Parts, account_id: str, *, manual: bool = False) -> PaymentIntent:
    result = await parts.payments.create_payment_intent(
        KeyedCall(account_id, "pay", "CreatePaymentIntent", b"pay"),
        NewPaymentIntent(
            amount_minor=30000,
            currency="usd",
            capture_method=CaptureMethod.MANUAL if manual else CaptureMethod.AUTOMATIC,
            return_url="https://shop/r",
        ),
        respond,
        confirm=ConfirmParams(payment_method_id="pm_visa"),
    )
    assert isinstance(result, Done)
    assert result.value.review_id is not None
    return result.value


async def test_an_approval_while_a_close_is_refunding_is_refused_and_the_close_wins(
    parts: Parts, reviews: ReviewsService, account_id: str, network: HeldRefunds
) -> None:
    review_id = (await _in_review(parts, account_id)).review_id or ""
    network.release.clear()
    closing = asyncio.create_task(
        reviews.close(account_id, review_id, ClosedReason.REFUNDED_AS_FRAUD)
    )
    # The close's refund is at the acquirer: the money is on its way back.
    await asyncio.wait_for(network.reached.wait(), 10)

    with pytest.raises(RemitError) as refused:
        await reviews.approve(account_id, review_id)

    assert (refused.value.kind, refused.value.code) == (
        ErrorKind.FAILED_PRECONDITION,
        "review_closing",
    )
    network.release.set()
    closed = await asyncio.wait_for(closing, 10)
    assert (closed.open, closed.closed_reason) == (False, ClosedReason.REFUNDED_AS_FRAUD)
    assert (await reviews.get(account_id, review_id)).closed_reason is (
        ClosedReason.REFUNDED_AS_FRAUD
    )


async def test_a_close_whose_refund_outcome_is_unknown_keeps_approval_refused_until_retried(
    parts: Parts, reviews: ReviewsService, account_id: str, network: HeldRefunds
) -> None:
    review_id = (await _in_review(parts, account_id)).review_id or ""
    # The acquirer is down: whether the refund got there is unknown.
    network.faults.extend(["before"] * 10)
    with pytest.raises(RemitError) as down:
        await reviews.close(account_id, review_id, ClosedReason.REFUNDED)
    assert down.value.kind is ErrorKind.UNAVAILABLE

    with pytest.raises(RemitError) as refused:
        await reviews.approve(account_id, review_id)
    assert refused.value.code == "review_closing"
    # Nor may another close refuse the payment another way meanwhile.
    with pytest.raises(RemitError) as other:
        await reviews.close(account_id, review_id, ClosedReason.REFUNDED_AS_FRAUD)
    assert other.value.code == "review_closing"

    network.faults.clear()
    closed = await reviews.close(account_id, review_id, ClosedReason.REFUNDED)
    assert closed.closed_reason is ClosedReason.REFUNDED
    refunds, _ = await parts.payments.list_refunds(account_id, limit=10)
    assert len(refunds) == 1


async def test_a_close_whose_cancel_certainly_failed_leaves_the_review_to_approve(
    parts: Parts, reviews: ReviewsService, account_id: str, network: HeldRefunds
) -> None:
    intent = await _in_review(parts, account_id, manual=True)
    review_id = intent.review_id or ""
    # The acquirer refuses the release: the authorization was captured first.
    network.refuse(
        f"{intent.latest_charge_id}_void", "charge_already_captured", "Already captured."
    )
    with pytest.raises(RemitError):
        await reviews.close(account_id, review_id, ClosedReason.CANCELED)

    approved = await reviews.approve(account_id, review_id)
    assert approved.closed_reason is ClosedReason.APPROVED


async def test_a_close_that_does_not_fit_the_payment_leaves_the_review_to_approve(
    parts: Parts, reviews: ReviewsService, account_id: str
) -> None:
    review_id = (await _in_review(parts, account_id)).review_id or ""
    with pytest.raises(RemitError) as refused:
        await reviews.close(account_id, review_id, ClosedReason.CANCELED)
    assert refused.value.param == "action"

    approved = await reviews.approve(account_id, review_id)
    assert approved.closed_reason is ClosedReason.APPROVED


async def _marked_being_closed(
    engine: AsyncEngine, account_id: str, review_id: str, reason: ClosedReason
) -> None:
    """The mark a close leaves when it dies before its refund or cancel passed `started`."""
    async with engine.begin() as db:
        reviews = ReviewRepository(db)
        review = await reviews.get(account_id, review_id, for_update=True)
        assert review is not None
        await reviews.save(replace(review, closing_reason=reason))


async def _claim_refusal_key(
    engine: AsyncEngine, account_id: str, review_id: str, reason: ClosedReason, at: datetime
) -> None:
    async with engine.begin() as db:
        await idempotency.begin(db, **refusal_call(account_id, review_id, reason).claim_fields(at))


async def test_a_close_that_died_before_its_refund_began_leaves_the_review_to_approve(
    parts: Parts, reviews: ReviewsService, account_id: str, core_engine: AsyncEngine
) -> None:
    intent = await _in_review(parts, account_id)
    review_id = intent.review_id or ""
    await _marked_being_closed(core_engine, account_id, review_id, ClosedReason.REFUNDED)

    approved = await reviews.approve(account_id, review_id)

    assert approved.closed_reason is ClosedReason.APPROVED
    # The dead close, were it to carry on now, finds its refund refused: no money moves.
    late = await parts.payments.create_refund(
        refusal_call(account_id, review_id, ClosedReason.REFUNDED),
        charge_id=intent.latest_charge_id,
        payment_intent_id=None,
        amount_minor=None,
        reason=None,
        metadata={},
        respond=lambda _: b"",
    )
    assert isinstance(late, Replay)
    assert late.code != 0
    refunds, _ = await parts.payments.list_refunds(account_id, limit=10)
    assert refunds == []


async def test_a_refund_key_left_at_started_past_its_lease_does_not_block_approval(
    parts: Parts,
    reviews: ReviewsService,
    account_id: str,
    core_engine: AsyncEngine,
    clock: FixedClock,
) -> None:
    review_id = (await _in_review(parts, account_id)).review_id or ""
    await _marked_being_closed(core_engine, account_id, review_id, ClosedReason.REFUNDED)
    lapsed = clock.now() - idempotency.lease() - timedelta(seconds=1)
    await _claim_refusal_key(core_engine, account_id, review_id, ClosedReason.REFUNDED, lapsed)

    approved = await reviews.approve(account_id, review_id)
    assert approved.closed_reason is ClosedReason.APPROVED


async def test_a_refund_key_just_claimed_keeps_approval_refused(
    parts: Parts,
    reviews: ReviewsService,
    account_id: str,
    core_engine: AsyncEngine,
    clock: FixedClock,
) -> None:
    """The close has only just claimed its key: it is under way, not dead."""
    review_id = (await _in_review(parts, account_id)).review_id or ""
    await _marked_being_closed(core_engine, account_id, review_id, ClosedReason.REFUNDED)
    await _claim_refusal_key(core_engine, account_id, review_id, ClosedReason.REFUNDED, clock.now())

    with pytest.raises(RemitError) as refused:
        await reviews.approve(account_id, review_id)
    assert refused.value.code == "review_closing"


async def test_a_close_that_died_before_its_cancel_began_leaves_the_review_to_refund(
    parts: Parts, reviews: ReviewsService, account_id: str, core_engine: AsyncEngine
) -> None:
    review_id = (await _in_review(parts, account_id)).review_id or ""
    await _marked_being_closed(core_engine, account_id, review_id, ClosedReason.CANCELED)

    closed = await reviews.close(account_id, review_id, ClosedReason.REFUNDED_AS_FRAUD)

    assert closed.closed_reason is ClosedReason.REFUNDED_AS_FRAUD
    refunds, _ = await parts.payments.list_refunds(account_id, limit=10)
    assert len(refunds) == 1


async def test_a_close_cancelled_before_its_refund_began_takes_its_mark_back(
    parts: Parts, reviews: ReviewsService, account_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    review_id = (await _in_review(parts, account_id)).review_id or ""

    async def cancelled(*_args: object, **_kw: object) -> None:
        raise asyncio.CancelledError

    monkeypatch.setattr(parts.payments, "create_refund", cancelled)
    with pytest.raises(asyncio.CancelledError):
        await reviews.close(account_id, review_id, ClosedReason.REFUNDED)

    assert (await reviews.get(account_id, review_id)).closing_reason is None


async def test_a_close_cut_off_while_its_refund_is_at_the_acquirer_closes_once_it_lands(
    parts: Parts, reviews: ReviewsService, account_id: str, network: HeldRefunds
) -> None:
    """The close's caller gone (its client, a stopping core), the refund runs on to its answer
    and is recorded (`PaymentsService._outliving_its_caller`): the review closes after it, as
    the close would have, rather than stay being closed with nothing left to finish it."""
    review_id = (await _in_review(parts, account_id)).review_id or ""
    network.release.clear()
    closing = asyncio.create_task(reviews.close(account_id, review_id, ClosedReason.REFUNDED))
    await asyncio.wait_for(network.reached.wait(), 10)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing

    network.release.set()
    await parts.payments.drain(30.0)
    review = await reviews.get(account_id, review_id)
    assert (review.open, review.closed_reason) == (False, ClosedReason.REFUNDED)
    refunds, _ = await parts.payments.list_refunds(account_id, limit=10)
    assert len(refunds) == 1


async def test_a_completer_cut_off_while_finishing_a_closes_refund_closes_the_review_after(
    parts: Parts,
    reviews: ReviewsService,
    account_id: str,
    network: HeldRefunds,
    clock: FixedClock,
) -> None:
    review_id = (await _in_review(parts, account_id)).review_id or ""
    network.faults.extend(["before"] * 10)  # the refund's outcome is left unknown
    with pytest.raises(RemitError):
        await reviews.close(account_id, review_id, ClosedReason.REFUNDED)
    network.faults.clear()
    network.release.clear()
    network.reached.clear()
    clock.advance((idempotency.lease() + timedelta(seconds=1)).total_seconds())

    async def resume(record: KeyRecord) -> None:
        assert await reviews.resume_refusal(record), record.key

    completing = asyncio.create_task(parts.payments.complete_abandoned(resume))
    await asyncio.wait_for(network.reached.wait(), 10)
    completing.cancel()  # the worker stopping
    with pytest.raises(asyncio.CancelledError):
        await completing

    network.release.set()
    await parts.payments.drain(30.0)
    review = await reviews.get(account_id, review_id)
    assert (review.open, review.closed_reason) == (False, ClosedReason.REFUNDED)
