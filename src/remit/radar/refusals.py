"""The refund or cancel a review's close asks for: the key it runs under, and how to tell it
from any other request (the completer finishing it, the payments service ending a payment
under review)."""

from remit.payments.idempotency import KeyRecord
from remit.payments.keyed import KeyedCall
from remit.payments.requests import internal_key
from remit.radar.reviews import ClosedReason


def _refusal_endpoint(reason: ClosedReason) -> str:
    return "CancelPaymentIntent" if reason is ClosedReason.CANCELED else "CreateRefund"


def refusal_call(account_id: str, review_id: str, reason: ClosedReason) -> KeyedCall:
    """The refund or cancel a close asks for runs under the review's own key, so it happens
    once however many closes and completers try it. The key is one of remit's own, which no
    client's Idempotency-Key can reach (a client's `review_<id>` neither blocks the close nor
    replays its answer). Its body names the review and the reason, which is all the completer
    needs to finish the close (`refusal_of`)."""
    return KeyedCall(
        account_id=account_id,
        key=internal_key(legacy_refusal_key(review_id)),
        endpoint=_refusal_endpoint(reason),
        request_body=f"{review_id}:{reason.value}".encode(),
    )


def legacy_refusal_key(review_id: str) -> str:
    """The key a close's refund or cancel was once stored under, in the clients' namespace.
    Such keys may still be stored, unfinished or holding the answer a close has to see."""
    return f"review_{review_id}"


def refusal_of(record: KeyRecord) -> tuple[str, ClosedReason] | None:
    """The review and the reason of a close's own refund or cancel key (`refusal_call`, or
    one stored under the old key `review_<id>`); None for any other key, such as a client's
    CancelPaymentIntent, whose body is a protobuf message."""
    review_id, colon, reason_text = record.request_body.decode(errors="replace").partition(":")
    legacy = legacy_refusal_key(review_id)
    if not colon or record.key not in (internal_key(legacy), legacy):
        return None
    try:
        reason = ClosedReason(reason_text)
    except ValueError:
        return None
    if reason is ClosedReason.APPROVED or record.endpoint != _refusal_endpoint(reason):
        return None
    return review_id, reason
