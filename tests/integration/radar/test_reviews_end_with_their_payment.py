"""A payment that ends without its review (refunded in full, its intent canceled, its
authorization expired) closes the review in the same transaction, with `review.closed`, as
Stripe does: otherwise a refunded payment's review stays open and only an approval can close
it. Real PostgreSQL, Radar, and an in-process network."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.payments.charges import Refund, RefundReason, RefundStatus
from remit.payments.domain import CaptureMethod, NewPaymentIntent, PaymentIntent, Status
from remit.payments.keyed import Done, KeyedCall
from remit.payments.network import OperationOutcome
from remit.payments.service import ConfirmParams
from remit.radar.domain import RuleAction
from remit.radar.refusals import refusal_call
from remit.radar.reviewing import ReviewsService
from remit.radar.reviews import ClosedReason
from remit.webhooks.tables import events
from tests.integration.radar.test_radar_in_payments import Parts, respond
from tests.support.authorizations import let_authorization_expire
from tests.support.fake_network import FakeNetwork
from tests.support.statements import statements_sent

pytestmark = pytest.mark.anyio

AMOUNT = 30000


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def parts(core_engine: AsyncEngine, clock: FixedClock) -> Parts:
    return Parts(core_engine, clock)


@pytest.fixture
def reviews(core_engine: AsyncEngine, parts: Parts, clock: FixedClock) -> ReviewsService:
    return ReviewsService(core_engine, parts.payments, clock=clock)


@pytest.fixture
async def account_id(parts: Parts, core_engine: AsyncEngine) -> str:
    account = (await AccountsService(core_engine).create_account()).account.id
    await parts.radar.create_rule(account, RuleAction.REVIEW, ":amount_in_usd: >= 300")
    return account


async def _paid(
    parts: Parts, account_id: str, key: str, *, amount: int = AMOUNT, manual: bool = False
) -> PaymentIntent:
    result = await parts.payments.create_payment_intent(
        KeyedCall(account_id, key, "CreatePaymentIntent", key.encode()),
        NewPaymentIntent(
            amount_minor=amount,
            currency="usd",
            capture_method=CaptureMethod.MANUAL if manual else CaptureMethod.AUTOMATIC,
            return_url="https://shop/r",
        ),
        respond,
        confirm=ConfirmParams(payment_method_id="pm_visa"),
    )
    assert isinstance(result, Done)
    return result.value


async def _refund(
    parts: Parts,
    account_id: str,
    key: str,
    charge_id: str,
    *,
    amount: int | None = None,
    reason: RefundReason | None = None,
) -> Refund:
    result = await parts.payments.create_refund(
        KeyedCall(account_id, key, "CreateRefund", key.encode()),
        charge_id=charge_id,
        payment_intent_id=None,
        amount_minor=amount,
        reason=reason,
        metadata={},
        respond=lambda _: b"",
    )
    assert isinstance(result, Done)
    return result.value


OPENED_AND_CLOSED = ["review.closed", "review.opened"]


async def _review_events(engine: AsyncEngine, account_id: str, review_id: str) -> list[str]:
    """The review's event types, sorted (the test clock stands still: they share a time)."""
    async with engine.connect() as db:
        rows = await db.execute(
            select(events.c.type).where(
                events.c.account_id == account_id,
                events.c.data_object["id"].astext == review_id,
            )
        )
        return sorted(rows.scalars())


async def _in_review(parts: Parts, account_id: str, key: str, **kw: object) -> PaymentIntent:
    intent = await _paid(parts, account_id, key, **kw)  # type: ignore[arg-type]
    assert intent.review_id is not None
    return intent


async def test_a_full_refund_closes_the_review_and_a_partial_one_does_not(
    parts: Parts, reviews: ReviewsService, account_id: str, core_engine: AsyncEngine
) -> None:
    intent = await _in_review(parts, account_id, "pay")
    assert intent.status is Status.SUCCEEDED
    review_id, charge_id = intent.review_id or "", intent.latest_charge_id or ""

    await _refund(parts, account_id, "part", charge_id, amount=AMOUNT - 100)
    assert (await reviews.get(account_id, review_id)).open

    await _refund(parts, account_id, "rest", charge_id)
    review = await reviews.get(account_id, review_id)
    assert (review.open, review.closed_reason) == (False, ClosedReason.REFUNDED)
    assert await _review_events(core_engine, account_id, review_id) == OPENED_AND_CLOSED
    # The merchant's refund settled the review: nothing can record it as approved now.
    with pytest.raises(RemitError) as closed:
        await reviews.approve(account_id, review_id)
    assert closed.value.code == "review_closed"


async def test_a_refund_as_fraudulent_closes_the_review_as_refunded_as_fraud(
    parts: Parts, reviews: ReviewsService, account_id: str
) -> None:
    intent = await _in_review(parts, account_id, "pay")
    await _refund(
        parts,
        account_id,
        "fraud",
        intent.latest_charge_id or "",
        reason=RefundReason.FRAUDULENT,
    )
    review = await reviews.get(account_id, intent.review_id or "")
    assert review.closed_reason is ClosedReason.REFUNDED_AS_FRAUD


async def test_canceling_the_intent_closes_its_review(
    parts: Parts, reviews: ReviewsService, account_id: str, core_engine: AsyncEngine
) -> None:
    intent = await _in_review(parts, account_id, "pay", manual=True)
    assert intent.status is Status.REQUIRES_CAPTURE
    canceled = await parts.payments.cancel_payment_intent(
        KeyedCall(account_id, "cancel", "CancelPaymentIntent", b"cancel"),
        intent.id,
        None,
        respond,
    )
    assert isinstance(canceled, Done)
    review = await reviews.get(account_id, intent.review_id or "")
    assert (review.open, review.closed_reason) == (False, ClosedReason.CANCELED)
    assert await _review_events(core_engine, account_id, review.id) == OPENED_AND_CLOSED


async def test_an_expired_authorization_closes_its_review_as_never_settled(
    parts: Parts, reviews: ReviewsService, account_id: str, core_engine: AsyncEngine
) -> None:
    intent = await _in_review(parts, account_id, "pay", manual=True)
    await let_authorization_expire(core_engine, intent.id)
    async with core_engine.begin() as db:
        assert await parts.payments.expire_authorization(db, account_id, intent.id)
    review = await reviews.get(account_id, intent.review_id or "")
    assert (review.open, review.closed_reason) == (False, ClosedReason.PAYMENT_NEVER_SETTLED)
    assert await _review_events(core_engine, account_id, review.id) == OPENED_AND_CLOSED


async def test_a_close_that_refunds_the_payment_closes_the_review_once(
    parts: Parts, reviews: ReviewsService, account_id: str, core_engine: AsyncEngine
) -> None:
    intent = await _in_review(parts, account_id, "pay")
    review_id = intent.review_id or ""
    closed = await reviews.close(account_id, review_id, ClosedReason.REFUNDED_AS_FRAUD)
    assert closed.closed_reason is ClosedReason.REFUNDED_AS_FRAUD
    assert await _review_events(core_engine, account_id, review_id) == OPENED_AND_CLOSED


async def test_a_closes_own_refund_leaves_closing_the_review_to_the_close(
    parts: Parts, reviews: ReviewsService, account_id: str
) -> None:
    """A close that refunded and stopped before closing the review (a crash): the review is
    still open for the close's retry, which replays the refund and closes it as it was asked,
    finishing its client's key in the same transaction."""
    intent = await _in_review(parts, account_id, "pay")
    review_id = intent.review_id or ""
    refunded = await parts.payments.create_refund(
        refusal_call(account_id, review_id, ClosedReason.REFUNDED_AS_FRAUD),
        charge_id=intent.latest_charge_id,
        payment_intent_id=None,
        amount_minor=None,
        reason=RefundReason.FRAUDULENT,
        metadata={},
        respond=lambda _: b"",
    )
    assert isinstance(refunded, Done)
    assert (await reviews.get(account_id, review_id)).open

    closed = await reviews.close(account_id, review_id, ClosedReason.REFUNDED_AS_FRAUD)

    assert closed.closed_reason is ClosedReason.REFUNDED_AS_FRAUD
    refunds, _ = await parts.payments.list_refunds(account_id, limit=10)
    assert [refund.id for refund in refunds] == [refunded.value.id]


async def test_refunding_a_payment_never_reviewed_does_not_look_for_a_review(
    parts: Parts, account_id: str, core_engine: AsyncEngine
) -> None:
    intent = await _paid(parts, account_id, "small", amount=1000)
    assert intent.review_id is None
    with statements_sent(core_engine) as statements:
        await _refund(parts, account_id, "refund", intent.latest_charge_id or "")
    assert not [sql for sql in statements if "radar_reviews" in sql]


def _refuse_refunds(network: FakeNetwork) -> None:
    """The acquirer refuses every refund from now on (the card was canceled since)."""
    send = network.refund

    async def refused(
        *, authorization_id: str, amount_minor: int, reference: str
    ) -> OperationOutcome:
        network.refuse(reference, "expired_or_canceled_card", "The card was canceled.")
        return await send(
            authorization_id=authorization_id, amount_minor=amount_minor, reference=reference
        )

    network.refund = refused  # type: ignore[method-assign]


async def test_a_full_refund_the_acquirer_refuses_leaves_the_review_open(
    parts: Parts, reviews: ReviewsService, account_id: str, core_engine: AsyncEngine
) -> None:
    intent = await _in_review(parts, account_id, "pay")
    review_id = intent.review_id or ""
    _refuse_refunds(parts.network)

    refund = await _refund(parts, account_id, "refund", intent.latest_charge_id or "")

    assert refund.status is RefundStatus.FAILED
    assert (await reviews.get(account_id, review_id)).open
    assert await _review_events(core_engine, account_id, review_id) == ["review.opened"]


async def test_a_close_whose_refund_the_acquirer_refuses_fails_and_leaves_the_review_open(
    parts: Parts, reviews: ReviewsService, account_id: str
) -> None:
    intent = await _in_review(parts, account_id, "pay")
    review_id = intent.review_id or ""
    _refuse_refunds(parts.network)

    with pytest.raises(RemitError) as failed:
        await reviews.close(account_id, review_id, ClosedReason.REFUNDED_AS_FRAUD)
    assert failed.value.code == "refund_failed"
    review = await reviews.get(account_id, review_id)
    assert (review.open, review.closing_reason) == (True, None)
    # A retry replays the refund the close's key holds: still failed, still not a close.
    with pytest.raises(RemitError) as again:
        await reviews.close(account_id, review_id, ClosedReason.REFUNDED_AS_FRAUD)
    assert again.value.code == "refund_failed"
    # The payment stands: the review can still be approved.
    approved = await reviews.approve(account_id, review_id)
    assert approved.closed_reason is ClosedReason.APPROVED


async def _refund_left_pending(
    parts: Parts, account_id: str, key: str, charge_id: str, amount: int
) -> Refund:
    """A refund of `amount` the acquirer could not be reached for: it stays pending, its
    request waiting for a retry with its key."""
    # The send and each of `_settle`'s tries fail before they reach the network.
    parts.network.faults.extend(["before"] * 4)
    with pytest.raises(RemitError) as unavailable:
        await _refund(parts, account_id, key, charge_id, amount=amount)
    assert unavailable.value.kind is ErrorKind.UNAVAILABLE
    parts.network.faults.clear()
    refunds, _ = await parts.payments.list_refunds(account_id, limit=10, charge_id=charge_id)
    (waiting,) = [refund for refund in refunds if refund.amount_minor == amount]
    assert waiting.status is RefundStatus.PENDING
    return waiting


async def test_a_refund_still_pending_keeps_the_review_open_and_its_failure_leaves_it_open(
    parts: Parts, reviews: ReviewsService, account_id: str, core_engine: AsyncEngine
) -> None:
    """The refunds reserve all of the charge between them, but one of them is still pending:
    the review stays open until it settles, and, when it fails, the payment stands (20000 of
    30000 refunded) with its review still open."""
    intent = await _in_review(parts, account_id, "pay")
    review_id, charge_id = intent.review_id or "", intent.latest_charge_id or ""
    waiting = await _refund_left_pending(parts, account_id, "r1", charge_id, 10000)

    await _refund(parts, account_id, "r2", charge_id, amount=20000)
    assert (await reviews.get(account_id, review_id)).open

    parts.network.refuse(waiting.id, "expired_or_canceled_card", "The card was canceled.")
    failed = await _refund(parts, account_id, "r1", charge_id, amount=10000)
    assert (failed.id, failed.status) == (waiting.id, RefundStatus.FAILED)
    charge, _ = await parts.payments.get_charge(account_id, charge_id)
    assert (charge.amount_refunded_minor, charge.refunded) == (20000, False)
    assert (await reviews.get(account_id, review_id)).open
    assert await _review_events(core_engine, account_id, review_id) == ["review.opened"]


async def test_the_review_closes_when_the_last_pending_refund_succeeds(
    parts: Parts, reviews: ReviewsService, account_id: str, core_engine: AsyncEngine
) -> None:
    intent = await _in_review(parts, account_id, "pay")
    review_id, charge_id = intent.review_id or "", intent.latest_charge_id or ""
    waiting = await _refund_left_pending(parts, account_id, "r1", charge_id, 10000)

    await _refund(parts, account_id, "r2", charge_id, amount=20000)
    assert (await reviews.get(account_id, review_id)).open

    succeeded = await _refund(parts, account_id, "r1", charge_id, amount=10000)
    assert (succeeded.id, succeeded.status) == (waiting.id, RefundStatus.SUCCEEDED)
    review = await reviews.get(account_id, review_id)
    assert (review.open, review.closed_reason) == (False, ClosedReason.REFUNDED)
    assert await _review_events(core_engine, account_id, review_id) == OPENED_AND_CLOSED


async def test_a_close_refused_while_pending_refunds_reserve_the_charge_refunds_once_they_fail(
    parts: Parts, reviews: ReviewsService, account_id: str, core_engine: AsyncEngine
) -> None:
    """The close's refund is refused for the charge's state (its refunds reserve all of it,
    one still pending): the refusal is not stored under the review's key, and the close takes
    its mark back, so that once the pending refund failed the next close refunds the rest
    rather than replay the refusal of the charge as it was."""
    intent = await _in_review(parts, account_id, "pay")
    review_id, charge_id = intent.review_id or "", intent.latest_charge_id or ""
    waiting = await _refund_left_pending(parts, account_id, "r1", charge_id, 10000)
    await _refund(parts, account_id, "r2", charge_id, amount=20000)

    with pytest.raises(RemitError) as refused:
        await reviews.close(account_id, review_id, ClosedReason.REFUNDED_AS_FRAUD)
    assert (refused.value.code, refused.value.kind) == (
        "charge_already_refunded",
        ErrorKind.FAILED_PRECONDITION,
    )
    review = await reviews.get(account_id, review_id)
    assert (review.open, review.closing_reason) == (True, None)

    parts.network.refuse(waiting.id, "expired_or_canceled_card", "The card was canceled.")
    failed = await _refund(parts, account_id, "r1", charge_id, amount=10000)
    assert failed.status is RefundStatus.FAILED

    closed = await reviews.close(account_id, review_id, ClosedReason.REFUNDED_AS_FRAUD)

    assert closed.closed_reason is ClosedReason.REFUNDED_AS_FRAUD
    refunds, _ = await parts.payments.list_refunds(account_id, limit=10, charge_id=charge_id)
    made = [r for r in refunds if r.id != waiting.id and r.amount_minor == 10000]
    assert [(r.status, r.reason) for r in made] == [
        (RefundStatus.SUCCEEDED, RefundReason.FRAUDULENT)
    ]
    charge, _ = await parts.payments.get_charge(account_id, charge_id)
    assert (charge.amount_refunded_minor, charge.refunded) == (AMOUNT, True)
    assert await _review_events(core_engine, account_id, review_id) == OPENED_AND_CLOSED
