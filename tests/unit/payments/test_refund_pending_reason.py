"""A refund says why it is pending (Stripe's `pending_reason`) while it is, and only then: a
remit refund is pending while the acquirer has it to process, so the reason is `processing`;
it is null once the refund succeeded, failed or was canceled, and while it waits on the
customer instead (`requires_action`)."""

from datetime import UTC, datetime

import pytest

from remit.core.jsonview import to_json
from remit.payments.charges import Refund, RefundStatus
from remit.payments.grpc import refund_message
from remit_api.payments.v1 import payments_pb2 as pb

AT = datetime(2026, 1, 2, tzinfo=UTC)


def _refund(status: RefundStatus) -> Refund:
    return Refund(
        id="re_1",
        account_id="acct_1",
        charge_id="ch_1",
        payment_intent_id="pi_1",
        amount_minor=500,
        currency="usd",
        status=status,
        created_at=AT,
        updated_at=AT,
    )


@pytest.mark.parametrize("status", list(RefundStatus))
def test_only_a_pending_refund_has_a_pending_reason(status: RefundStatus) -> None:
    message = refund_message(_refund(status))
    pending = status is RefundStatus.PENDING

    assert message.HasField("pending_reason") is pending
    if pending:
        assert message.pending_reason == pb.REFUND_PENDING_REASON_PROCESSING
    assert to_json(message)["pending_reason"] == ("processing" if pending else None)
