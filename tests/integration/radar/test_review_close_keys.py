"""A review close's own refund or cancel runs under a key of remit's own, which no client's
Idempotency-Key can reach; one stored under the old key `review_<id>`, in the clients'
namespace, is still resumed or replayed, never sent a second time."""

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.rpc import status_pb2
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.payments.domain import CancellationReason, CaptureMethod, NewPaymentIntent, Status
from remit.payments.idempotency import KeyRecord, RecoveryPoint, lease
from remit.payments.keyed import Done, Keyed, KeyedCall, Replay
from remit.payments.service import ConfirmParams
from remit.payments.tables import idempotency_keys
from remit.radar.domain import RuleAction
from remit.radar.reviewing import ReviewsService
from remit.radar.reviews import ClosedReason, Review
from tests.integration.radar.test_radar_in_payments import Parts, respond

pytestmark = pytest.mark.anyio


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
async def account_id(core_engine: AsyncEngine) -> str:
    return (await AccountsService(core_engine).create_account()).account.id


def _closed(review: Review) -> bytes:
    return f"{review.id}:{review.closed_reason}".encode()


async def _held_in_review(parts: Parts, account_id: str) -> tuple[str, str]:
    """A payment authorized, not captured, and held in review: (review id, intent id)."""
    await parts.radar.create_rule(account_id, RuleAction.REVIEW, ":amount_in_usd: >= 300")
    result = await parts.payments.create_payment_intent(
        KeyedCall(account_id, "pay", "CreatePaymentIntent", b"pay"),
        NewPaymentIntent(
            amount_minor=30000,
            currency="usd",
            capture_method=CaptureMethod.MANUAL,
            return_url="https://shop/r",
        ),
        respond,
        confirm=ConfirmParams(payment_method_id="pm_visa"),
    )
    assert isinstance(result, Done)
    intent = result.value
    assert intent.status is Status.REQUIRES_CAPTURE
    assert intent.review_id is not None
    return intent.review_id, intent.id


def _old_format_cancel(account_id: str, review_id: str) -> KeyedCall:
    """The close's cancel as it was keyed before its keys had a namespace of their own."""
    return KeyedCall(
        account_id, f"review_{review_id}", "CancelPaymentIntent", f"{review_id}:canceled".encode()
    )


async def _keys(engine: AsyncEngine) -> dict[str, str]:
    async with engine.connect() as db:
        rows = await db.execute(select(idempotency_keys.c.key, idempotency_keys.c.recovery_point))
        return {row.key: row.recovery_point for row in rows}


async def test_a_client_key_named_like_a_review_does_not_get_in_the_way_of_its_close(
    parts: Parts, reviews: ReviewsService, account_id: str, core_engine: AsyncEngine
) -> None:
    review_id, intent_id = await _held_in_review(parts, account_id)
    # The client keys its close after the review, as the old inner key was named.
    keyed = Keyed(
        KeyedCall(account_id, f"review_{review_id}", "CloseReview", b"close-cancel"), _closed
    )

    result = await reviews.close_once(account_id, keyed, review_id, ClosedReason.CANCELED)

    assert isinstance(result, Done)
    assert result.value.closed_reason is ClosedReason.CANCELED
    intent = await parts.payments.get_payment_intent(account_id, intent_id)
    assert intent.status is Status.CANCELED
    assert len(parts.network.sent) == 2, "the authorization and one void"
    # And a retry of the client's close replays it.
    again = await reviews.close_once(account_id, keyed, review_id, ClosedReason.CANCELED)
    assert not isinstance(again, Done)
    assert again.body == _closed(result.value)


async def test_an_old_format_cancel_left_by_a_crash_is_finished_by_the_completer(
    parts: Parts,
    reviews: ReviewsService,
    clock: FixedClock,
    account_id: str,
    core_engine: AsyncEngine,
) -> None:
    review_id, intent_id = await _held_in_review(parts, account_id)
    # The acquirer is down: the void never goes out, however often it is tried.
    parts.network.faults.extend(["before"] * 10)
    with pytest.raises(RemitError) as down:
        await parts.payments.cancel_payment_intent(
            _old_format_cancel(account_id, review_id),
            intent_id,
            CancellationReason.FRAUDULENT,
            lambda _: b"",
        )
    assert down.value.kind is ErrorKind.UNAVAILABLE
    assert (await _keys(core_engine))[f"review_{review_id}"] != RecoveryPoint.FINISHED.value
    parts.network.faults.clear()
    clock.advance((lease() + timedelta(seconds=1)).total_seconds())

    async def resume(record: KeyRecord) -> None:
        assert await reviews.resume_refusal(record), record.key

    assert await parts.payments.complete_abandoned(resume) == 1

    review = await reviews.get(account_id, review_id)
    assert review.closed_reason is ClosedReason.CANCELED
    intent = await parts.payments.get_payment_intent(account_id, intent_id)
    assert intent.status is Status.CANCELED
    assert (await _keys(core_engine))[f"review_{review_id}"] == RecoveryPoint.FINISHED.value


async def test_a_close_whose_cancel_went_through_under_the_old_key_replays_it(
    parts: Parts, reviews: ReviewsService, account_id: str, core_engine: AsyncEngine
) -> None:
    review_id, intent_id = await _held_in_review(parts, account_id)
    # A close voided under the old key, then died before closing the review.
    canceled = await parts.payments.cancel_payment_intent(
        _old_format_cancel(account_id, review_id),
        intent_id,
        CancellationReason.FRAUDULENT,
        lambda _: b"",
    )
    assert isinstance(canceled, Done)

    closed = await reviews.close(account_id, review_id, ClosedReason.CANCELED)

    assert closed.closed_reason is ClosedReason.CANCELED
    assert len(parts.network.sent) == 2, "the authorization and one void"
    assert not any(key.startswith("remit-internal/") for key in await _keys(core_engine))


async def test_a_close_that_fails_validation_frees_its_key_at_once(
    parts: Parts, reviews: ReviewsService, account_id: str, core_engine: AsyncEngine
) -> None:
    """As every request that fails validation: nothing happened, so the client may fix the
    request and send it again under the same key, rather than be told the key is in use until
    the completer comes by."""
    review_id, intent_id = await _held_in_review(parts, account_id)
    refund = Keyed(KeyedCall(account_id, "close", "CloseReview", b"close-refund"), _closed)

    with pytest.raises(RemitError) as invalid:
        await reviews.close_once(account_id, refund, review_id, ClosedReason.REFUNDED)

    assert (invalid.value.kind, invalid.value.param) == (ErrorKind.INVALID_ARGUMENT, "action")
    assert "close" not in await _keys(core_engine)
    cancel = Keyed(KeyedCall(account_id, "close", "CloseReview", b"close-cancel"), _closed)
    result = await reviews.close_once(account_id, cancel, review_id, ClosedReason.CANCELED)
    assert isinstance(result, Done)
    assert result.value.closed_reason is ClosedReason.CANCELED
    assert (await parts.payments.get_payment_intent(account_id, intent_id)).status is (
        Status.CANCELED
    )


async def test_a_close_refused_for_the_reviews_state_stores_the_refusal_at_once(
    parts: Parts, reviews: ReviewsService, account_id: str, core_engine: AsyncEngine
) -> None:
    """The review was approved first: the refusal is the close's answer, replayed to its
    retries at once (not 409 until the completer finishes the key), as Stripe stores any
    refusal once the endpoint's work has begun."""
    review_id, intent_id = await _held_in_review(parts, account_id)
    await reviews.approve(account_id, review_id)
    keyed = Keyed(KeyedCall(account_id, "late", "CloseReview", b"close-cancel"), _closed)

    with pytest.raises(RemitError) as refused:
        await reviews.close_once(account_id, keyed, review_id, ClosedReason.CANCELED)

    assert refused.value.code == "review_closed"
    assert (await _keys(core_engine))["late"] == RecoveryPoint.FINISHED.value
    again = await reviews.close_once(account_id, keyed, review_id, ClosedReason.CANCELED)
    assert isinstance(again, Replay)
    status = status_pb2.Status.FromString(again.body)
    assert again.code == status.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert "already closed (approved)" in status.message
    assert (await parts.payments.get_payment_intent(account_id, intent_id)).status is (
        Status.REQUIRES_CAPTURE
    )
    assert len(parts.network.sent) == 1, "the authorization alone"


async def test_a_close_whose_cancel_could_not_reach_the_acquirer_leaves_its_key_to_retry(
    parts: Parts, reviews: ReviewsService, account_id: str, core_engine: AsyncEngine
) -> None:
    """Whether the void got there is unknown: the key keeps the point it reached, released for
    the client's retry to carry on at once, which voids once and closes the review."""
    review_id, intent_id = await _held_in_review(parts, account_id)
    parts.network.faults.extend(["before"] * 10)
    keyed = Keyed(KeyedCall(account_id, "close", "CloseReview", b"close-cancel"), _closed)
    with pytest.raises(RemitError) as down:
        await reviews.close_once(account_id, keyed, review_id, ClosedReason.CANCELED)
    assert down.value.kind is ErrorKind.UNAVAILABLE
    assert (await _keys(core_engine))["close"] == RecoveryPoint.ATTEMPT_CREATED.value
    parts.network.faults.clear()

    result = await reviews.close_once(account_id, keyed, review_id, ClosedReason.CANCELED)

    assert isinstance(result, Done)
    assert result.value.closed_reason is ClosedReason.CANCELED
    assert (await parts.payments.get_payment_intent(account_id, intent_id)).status is (
        Status.CANCELED
    )
    voids = [ref for ref in parts.network.sent if ref.endswith("_void")]
    assert len(voids) == 1
