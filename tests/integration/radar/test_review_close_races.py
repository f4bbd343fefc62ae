"""An approval racing a close that refunds or cancels the payment: the close records how it
will close the review before it moves any money, and an approval is refused until it has
closed, or until its refund or cancel has certainly failed. Real PostgreSQL, Radar, and an
in-process network whose refunds can be held at the acquirer."""

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.payments.domain import CaptureMethod, NewPaymentIntent, PaymentIntent
from remit.payments.grpc import payment_intent_message
from remit.payments.keyed import Done, KeyedCall
from remit.payments.network import OperationOutcome
from remit.payments.service import ConfirmParams, PaymentsService
from remit.radar.domain import RuleAction
from remit.radar.reviewing import ReviewsService
from remit.radar.reviews import ClosedReason
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
