"""A close whose refund the acquirer failed: the payment stands and the review stays open, to
be approved. Its refund is the review's, under the review's key whatever the reason, so it is
never made a second time: a close with the other refund reason is told what became of it
rather than refused as an idempotency mismatch, and a close that died before it took its mark
back keeps no approval from going through. Real PostgreSQL, Radar, and an in-process network
that refuses refunds."""

import pytest

from remit.core.errors import ErrorKind, RemitError
from remit.payments.charges import RefundStatus
from remit.radar.reviewing import ReviewsService
from remit.radar.reviews import ClosedReason
from tests.integration.radar.test_radar_in_payments import Parts
from tests.integration.radar.test_reviews_end_with_their_payment import (
    _in_review,
    _refuse_refunds,
    account_id,
    clock,
    parts,
    reviews,
)

pytestmark = pytest.mark.anyio

__all__ = ["account_id", "clock", "parts", "reviews"]  # fixtures


async def _close_whose_refund_failed(
    parts: Parts,
    reviews: ReviewsService,
    account_id: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    dies: bool,
) -> str:
    """A payment in review closed as refunded_as_fraud, its refund refused by the acquirer (the
    card was canceled since); with `dies`, the process is gone before the close takes its mark
    back. The review's id."""
    intent = await _in_review(parts, account_id, "pay")
    review_id = intent.review_id or ""
    _refuse_refunds(parts.network)

    async def gone(*_args: object, **_kwargs: object) -> None:
        raise ConnectionError("db gone before clean-up")

    with monkeypatch.context() as patched:
        if dies:
            patched.setattr(reviews, "_stop_closing_unless_under_way", gone)
        with pytest.raises((RemitError, ConnectionError)) as failed:
            await reviews.close(account_id, review_id, ClosedReason.REFUNDED_AS_FRAUD)
    assert isinstance(failed.value, ConnectionError if dies else RemitError)
    review = await reviews.get(account_id, review_id)
    assert review.open
    assert review.closing_reason is (ClosedReason.REFUNDED_AS_FRAUD if dies else None)
    return review_id


async def _refunds(parts: Parts, account_id: str) -> list[RefundStatus]:
    refunds, _ = await parts.payments.list_refunds(account_id, limit=10)
    return [refund.status for refund in refunds]


@pytest.mark.parametrize("dies", [False, True], ids=["took-its-mark-back", "died"])
async def test_a_close_with_the_other_refund_reason_is_told_the_refund_failed(
    parts: Parts,
    reviews: ReviewsService,
    account_id: str,
    monkeypatch: pytest.MonkeyPatch,
    dies: bool,
) -> None:
    review_id = await _close_whose_refund_failed(parts, reviews, account_id, monkeypatch, dies=dies)

    with pytest.raises(RemitError) as refused:
        await reviews.close(account_id, review_id, ClosedReason.REFUNDED)

    assert (refused.value.kind, refused.value.code) == (
        ErrorKind.FAILED_PRECONDITION,
        "refund_failed",
    )
    assert "closed as refunded_as_fraud" in refused.value.message
    assert "expired_or_canceled_card" in refused.value.message
    # One refund, the failed one: the other reason did not send a second.
    assert await _refunds(parts, account_id) == [RefundStatus.FAILED]
    assert sum(1 for ref in parts.network.sent if ref.startswith("re_")) == 1
    approved = await reviews.approve(account_id, review_id)
    assert approved.closed_reason is ClosedReason.APPROVED


async def test_a_close_that_died_after_its_refund_failed_leaves_the_review_to_approve(
    parts: Parts, reviews: ReviewsService, account_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing is left for the completer (the refund's key is finished, failed): the approval
    itself sees that the refund failed, and goes through."""
    review_id = await _close_whose_refund_failed(parts, reviews, account_id, monkeypatch, dies=True)

    approved = await reviews.approve(account_id, review_id)

    assert (approved.open, approved.closed_reason) == (False, ClosedReason.APPROVED)
    assert approved.closing_reason is None
    # A close still on its way after the approval refunds nothing.
    for reason in (ClosedReason.REFUNDED_AS_FRAUD, ClosedReason.REFUNDED):
        with pytest.raises(RemitError) as closed:
            await reviews.close(account_id, review_id, reason)
        assert closed.value.code == "review_closed"
    assert await _refunds(parts, account_id) == [RefundStatus.FAILED]


async def test_a_close_with_the_same_reason_after_one_that_died_is_told_again_and_lets_go(
    parts: Parts, reviews: ReviewsService, account_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    review_id = await _close_whose_refund_failed(parts, reviews, account_id, monkeypatch, dies=True)

    with pytest.raises(RemitError) as again:
        await reviews.close(account_id, review_id, ClosedReason.REFUNDED_AS_FRAUD)

    assert again.value.code == "refund_failed"
    review = await reviews.get(account_id, review_id)
    assert (review.open, review.closing_reason) == (True, None)
    assert await _refunds(parts, account_id) == [RefundStatus.FAILED]


async def test_a_review_closed_by_its_refund_is_not_closed_again_with_the_other_reason(
    parts: Parts, reviews: ReviewsService, account_id: str
) -> None:
    intent = await _in_review(parts, account_id, "pay")
    review_id = intent.review_id or ""
    await reviews.close(account_id, review_id, ClosedReason.REFUNDED_AS_FRAUD)

    with pytest.raises(RemitError) as refused:
        await reviews.close(account_id, review_id, ClosedReason.REFUNDED)

    assert (refused.value.kind, refused.value.code) == (
        ErrorKind.FAILED_PRECONDITION,
        "review_closed",
    )
    assert "(refunded_as_fraud)" in refused.value.message
    assert await _refunds(parts, account_id) == [RefundStatus.SUCCEEDED]
