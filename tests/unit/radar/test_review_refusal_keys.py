"""The completer tells a close's own refund or cancel key from a client's key by its body."""

from datetime import UTC, datetime

import pytest

from remit.payments.idempotency import KeyRecord, RecoveryPoint
from remit.radar.refusals import refusal_call, refusal_of
from remit.radar.reviews import ClosedReason
from remit_api.payments.v1 import payments_pb2 as pb


def _record(key: str, endpoint: str, body: bytes) -> KeyRecord:
    return KeyRecord(
        account_id="acct_1",
        key=key,
        endpoint=endpoint,
        request_body=body,
        recovery_point=RecoveryPoint.ATTEMPT_CREATED,
        response_code=None,
        response_body=None,
        payment_intent_id="pi_1",
        charge_id="ch_1",
        refund_id=None,
        request_id=None,
        created_at=datetime(2026, 3, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    "reason", [ClosedReason.CANCELED, ClosedReason.REFUNDED, ClosedReason.REFUNDED_AS_FRAUD]
)
def test_a_close_s_own_key_names_its_review_and_reason(reason: ClosedReason) -> None:
    call = refusal_call("acct_1", "rev_1", reason)
    record = _record(call.key, call.endpoint, call.request_body)
    assert refusal_of(record) == ("rev_1", reason)


def test_a_client_s_cancel_is_not_taken_for_a_close_even_under_a_review_like_key() -> None:
    body = pb.CancelPaymentIntentRequest(id="pi_1").SerializeToString()
    assert refusal_of(_record("review_rev_1", "CancelPaymentIntent", body)) is None
    assert refusal_of(_record("mine", "CancelPaymentIntent", b"rev_1:canceled")) is None
    assert refusal_of(_record("review_rev_1", "CreateRefund", b"rev_1:canceled")) is None
    assert refusal_of(_record("review_rev_1", "CreateRefund", b"rev_1:approved")) is None
