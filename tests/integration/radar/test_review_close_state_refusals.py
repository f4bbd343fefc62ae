"""A close's refund refused for the charge's state (its other refunds reserve all of it, one
still pending) is not stored under the review's key: a close that dies right after the refusal
leaves nothing that keeps the review from being approved, or its next close from refunding once
the pending refund failed. A refusal a version before stored there is handled as one that moved
nothing. Real PostgreSQL, Radar, and an in-process network."""

from dataclasses import replace

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.errors import ErrorKind, RemitError
from remit.payments import idempotency
from remit.payments.charges import RefundReason, RefundStatus
from remit.payments.idempotency import KeyRecord
from remit.radar.refusals import refusal_call
from remit.radar.reviewing import ReviewsService
from remit.radar.reviews import ClosedReason, ReviewRepository
from tests.integration.radar.test_radar_in_payments import Parts
from tests.integration.radar.test_reviews_end_with_their_payment import (
    _in_review,
    _refund,
    _refund_left_pending,
    account_id,
    clock,
    parts,
    reviews,
)

pytestmark = pytest.mark.anyio

__all__ = ["account_id", "clock", "parts", "reviews"]  # fixtures


async def _reserved_with_one_pending(parts: Parts, account_id: str) -> tuple[str, str, str]:
    """A payment in review whose refunds reserve all of its charge, 10000 of them still
    pending: the review's id, the charge's, and the pending refund's."""
    intent = await _in_review(parts, account_id, "pay")
    review_id, charge_id = intent.review_id or "", intent.latest_charge_id or ""
    waiting = await _refund_left_pending(parts, account_id, "r1", charge_id, 10000)
    await _refund(parts, account_id, "r2", charge_id, amount=20000)
    return review_id, charge_id, waiting.id


async def _pending_refund_fails(
    parts: Parts, account_id: str, charge_id: str, waiting_id: str
) -> None:
    parts.network.refuse(waiting_id, "expired_or_canceled_card", "The card was canceled.")
    failed = await _refund(parts, account_id, "r1", charge_id, amount=10000)
    assert (failed.id, failed.status) == (waiting_id, RefundStatus.FAILED)


async def _close_dies_after_its_refund_is_refused(
    reviews: ReviewsService, monkeypatch: pytest.MonkeyPatch, account_id: str, review_id: str
) -> None:
    """A close whose refund the charge's state refuses, and whose process is gone before it
    takes its mark back."""

    async def dies(*_args: object, **_kwargs: object) -> None:
        raise ConnectionError("db gone before clean-up")

    with monkeypatch.context() as patched:
        patched.setattr(reviews, "_stop_closing_unless_under_way", dies)
        with pytest.raises(ConnectionError):
            await reviews.close(account_id, review_id, ClosedReason.REFUNDED_AS_FRAUD)
    review = await reviews.get(account_id, review_id)
    assert (review.open, review.closing_reason) == (True, ClosedReason.REFUNDED_AS_FRAUD)


async def _refunds_of_10000(
    parts: Parts, account_id: str, charge_id: str, waiting_id: str
) -> list[tuple[RefundStatus, RefundReason | None]]:
    refunds, _ = await parts.payments.list_refunds(account_id, limit=10, charge_id=charge_id)
    return [(r.status, r.reason) for r in refunds if r.id != waiting_id and r.amount_minor == 10000]


async def _review_key(engine: AsyncEngine, account_id: str, review_id: str) -> KeyRecord | None:
    call = refusal_call(account_id, review_id, ClosedReason.REFUNDED_AS_FRAUD)
    async with engine.connect() as db:
        return await idempotency.find(db, account_id, call.key)


async def test_a_close_that_died_after_its_refund_was_refused_leaves_the_review_approvable(
    parts: Parts,
    reviews: ReviewsService,
    account_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    review_id, charge_id, waiting_id = await _reserved_with_one_pending(parts, account_id)
    await _close_dies_after_its_refund_is_refused(reviews, monkeypatch, account_id, review_id)
    await _pending_refund_fails(parts, account_id, charge_id, waiting_id)

    approved = await reviews.approve(account_id, review_id)

    assert approved.closed_reason is ClosedReason.APPROVED
    # And no close still on its way can refund after the approval.
    with pytest.raises(RemitError) as closed:
        await reviews.close(account_id, review_id, ClosedReason.REFUNDED_AS_FRAUD)
    assert closed.value.code == "review_closed"
    assert await _refunds_of_10000(parts, account_id, charge_id, waiting_id) == []


async def test_a_close_after_one_that_died_refused_refunds_once_the_pending_refund_failed(
    parts: Parts,
    reviews: ReviewsService,
    account_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    review_id, charge_id, waiting_id = await _reserved_with_one_pending(parts, account_id)
    await _close_dies_after_its_refund_is_refused(reviews, monkeypatch, account_id, review_id)
    await _pending_refund_fails(parts, account_id, charge_id, waiting_id)

    closed = await reviews.close(account_id, review_id, ClosedReason.REFUNDED_AS_FRAUD)

    assert closed.closed_reason is ClosedReason.REFUNDED_AS_FRAUD
    assert await _refunds_of_10000(parts, account_id, charge_id, waiting_id) == [
        (RefundStatus.SUCCEEDED, RefundReason.FRAUDULENT)
    ]


async def _refusal_stored_as_before(
    parts: Parts, account_id: str, review_id: str, charge_id: str
) -> None:
    """The close's refund refused for the charge's state and stored under the review's key,
    as the version before stored it (a refund under any key stores such a refusal)."""
    with pytest.raises(RemitError) as refused:
        await parts.payments.create_refund(
            refusal_call(account_id, review_id, ClosedReason.REFUNDED_AS_FRAUD),
            charge_id=charge_id,
            payment_intent_id=None,
            amount_minor=None,
            reason=RefundReason.FRAUDULENT,
            metadata={},
            respond=lambda _: b"",
        )
    assert refused.value.code == "charge_already_refunded"


async def _mark_left(engine: AsyncEngine, account_id: str, review_id: str) -> None:
    """The mark of a close that died before taking it back."""
    async with engine.begin() as db:
        repo = ReviewRepository(db)
        review = await repo.get(account_id, review_id, for_update=True)
        assert review is not None
        await repo.save(replace(review, closing_reason=ClosedReason.REFUNDED_AS_FRAUD))


@pytest.mark.parametrize("then", [ClosedReason.APPROVED, ClosedReason.REFUNDED])
async def test_a_refusal_stored_before_with_its_mark_left_keeps_nothing_from_closing(
    parts: Parts,
    reviews: ReviewsService,
    account_id: str,
    core_engine: AsyncEngine,
    then: ClosedReason,
) -> None:
    """An approval, or a close with another refund reason, takes the key over as that of a
    close that never began."""
    review_id, charge_id, waiting_id = await _reserved_with_one_pending(parts, account_id)
    await _refusal_stored_as_before(parts, account_id, review_id, charge_id)
    await _mark_left(core_engine, account_id, review_id)
    stored = await _review_key(core_engine, account_id, review_id)
    assert stored is not None
    assert stored.finished
    await _pending_refund_fails(parts, account_id, charge_id, waiting_id)

    closed = await reviews.close(account_id, review_id, then)

    assert closed.closed_reason is then
    made = await _refunds_of_10000(parts, account_id, charge_id, waiting_id)
    if then is ClosedReason.APPROVED:
        assert made == []
    else:
        assert made == [(RefundStatus.SUCCEEDED, RefundReason.REQUESTED_BY_CUSTOMER)]


async def test_a_refusal_stored_before_is_not_replayed_to_the_next_close(
    parts: Parts, reviews: ReviewsService, account_id: str
) -> None:
    """The close that stored it took its mark back; the review is open, its key holds the
    refusal of the charge as it was."""
    review_id, charge_id, waiting_id = await _reserved_with_one_pending(parts, account_id)
    await _refusal_stored_as_before(parts, account_id, review_id, charge_id)
    await _pending_refund_fails(parts, account_id, charge_id, waiting_id)

    closed = await reviews.close(account_id, review_id, ClosedReason.REFUNDED_AS_FRAUD)

    assert closed.closed_reason is ClosedReason.REFUNDED_AS_FRAUD
    assert await _refunds_of_10000(parts, account_id, charge_id, waiting_id) == [
        (RefundStatus.SUCCEEDED, RefundReason.FRAUDULENT)
    ]


async def test_a_refusal_replayed_to_a_close_keeps_its_code(
    parts: Parts,
    reviews: ReviewsService,
    account_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process of the version before, closing the review at the same time, stores the
    refusal under the review's key just before this close's refund: this close replays it, and
    its caller is told why, code and all. The mark is taken back for the next close."""
    review_id, charge_id, waiting_id = await _reserved_with_one_pending(parts, account_id)
    refund = parts.payments.create_refund

    async def after_an_older_close(*args: object, **kwargs: object) -> object:
        kwargs.pop("stores_state_refusals", None)
        with pytest.raises(RemitError):
            await refund(*args, **kwargs)  # type: ignore[arg-type]
        return await refund(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(parts.payments, "create_refund", after_an_older_close)

    with pytest.raises(RemitError) as refused:
        await reviews.close(account_id, review_id, ClosedReason.REFUNDED_AS_FRAUD)

    assert (refused.value.code, refused.value.kind) == (
        "charge_already_refunded",
        ErrorKind.FAILED_PRECONDITION,
    )
    assert "has already been refunded" in refused.value.message
    review = await reviews.get(account_id, review_id)
    assert (review.open, review.closing_reason) == (True, None)
    monkeypatch.undo()
    await _pending_refund_fails(parts, account_id, charge_id, waiting_id)
    closed = await reviews.close(account_id, review_id, ClosedReason.REFUNDED_AS_FRAUD)
    assert closed.closed_reason is ClosedReason.REFUNDED_AS_FRAUD
