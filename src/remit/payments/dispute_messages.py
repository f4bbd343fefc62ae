"""A dispute as the Payments API shows it (Stripe's Dispute at the latest version)."""

from collections.abc import Sequence
from typing import Final

from remit.core.jsonview import enum_numbers
from remit.grpcutil.protoconv import timestamp
from remit.ledger.messages import balance_transaction_message
from remit.ledger.objects import BalanceTransaction
from remit.payments.disputes import Dispute
from remit_api.payments.v1 import payments_pb2 as pb

_STATUS: Final = enum_numbers(pb.DisputeStatus.DESCRIPTOR)
_REASON: Final = enum_numbers(pb.DisputeReason.DESCRIPTOR)


def dispute_message(dispute: Dispute, moved: Sequence[BalanceTransaction]) -> pb.Dispute:
    """`moved`: the dispute's balance transactions, in its order."""
    evidence = pb.DisputeEvidence()
    for name, value in dispute.evidence.items():
        setattr(evidence, name, value)
    return pb.Dispute(
        id=dispute.id,
        amount=dispute.amount_minor,
        balance_transactions=[balance_transaction_message(txn) for txn in moved],
        charge=dispute.charge_id,
        created=timestamp(dispute.created_at),
        currency=dispute.currency,
        evidence=evidence,
        evidence_details=pb.DisputeEvidenceDetails(
            due_by=timestamp(dispute.evidence_due_by),
            has_evidence=dispute.has_evidence,
            past_due=dispute.past_due,
            submission_count=dispute.submission_count,
        ),
        # A disputed charge cannot be refunded (`PaymentsService.create_refund`).
        is_charge_refundable=False,
        livemode=False,
        metadata=dict(dispute.metadata),
        payment_intent=dispute.payment_intent_id,
        reason=_REASON[dispute.reason.value],  # type: ignore[arg-type]
        status=_STATUS[dispute.status.value],  # type: ignore[arg-type]
    )
