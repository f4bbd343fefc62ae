"""A dispute as the Payments API shows it (Stripe's Dispute at the latest version)."""

from collections.abc import Sequence
from typing import Final

from remit.core.jsonview import enum_numbers
from remit.grpcutil.protoconv import timestamp
from remit.ledger.messages import balance_transaction_message
from remit.ledger.objects import BalanceTransaction
from remit.payments.disputes import Dispute
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2 as pb

_STATUS: Final = enum_numbers(pb.DisputeStatus.DESCRIPTOR)
_REASON: Final = enum_numbers(pb.DisputeReason.DESCRIPTOR)
_BRAND: Final = enum_numbers(common_pb2.CardBrand.DESCRIPTOR)


def dispute_message(dispute: Dispute, moved: Sequence[BalanceTransaction]) -> pb.Dispute:
    """`moved`: the dispute's balance transactions, in its order."""
    evidence = pb.DisputeEvidence()
    for name, value in dispute.evidence.items():
        setattr(evidence, name, value)
    # No enhanced evidence program applies to remit's disputes: an empty hash, as on Stripe.
    evidence.enhanced_evidence.SetInParent()
    details = pb.DisputeEvidenceDetails(
        due_by=timestamp(dispute.evidence_due_by),
        has_evidence=dispute.has_evidence,
        past_due=dispute.past_due,
        submission_count=dispute.submission_count,
        # The merchant submits evidence themselves: remit has no Smart Disputes.
        submission_method=(
            pb.DISPUTE_SUBMISSION_METHOD_MANUAL
            if dispute.submission_count
            else pb.DISPUTE_SUBMISSION_METHOD_NOT_SUBMITTED
        ),
    )
    details.enhanced_eligibility.SetInParent()
    message = pb.Dispute(
        id=dispute.id,
        amount=dispute.amount_minor,
        balance_transactions=[balance_transaction_message(txn) for txn in moved],
        charge=dispute.charge_id,
        created=timestamp(dispute.created_at),
        currency=dispute.currency,
        evidence=evidence,
        evidence_details=details,
        # A disputed charge cannot be refunded (`PaymentsService.create_refund`).
        is_charge_refundable=False,
        livemode=False,
        metadata=dict(dispute.metadata),
        payment_intent=dispute.payment_intent_id,
        payment_method_details=_payment_method_details(dispute),
        reason=_REASON[dispute.reason.value],  # type: ignore[arg-type]
        status=_STATUS[dispute.status.value],  # type: ignore[arg-type]
    )
    code = dispute.network_reason_code
    if code is not None:
        message.network_reason_code = code
    return message


def _payment_method_details(dispute: Dispute) -> pb.DisputePaymentMethodDetails:
    brand = dispute.card_brand or "unknown"
    card = pb.DisputePaymentMethodDetailsCard(
        # Every dispute remit opens is a chargeback: the issuer took the money back.
        case_type=pb.DISPUTE_CASE_TYPE_CHARGEBACK,
        network=brand,
    )
    if brand in _BRAND:
        card.brand = _BRAND[brand]  # type: ignore[assignment]
    code = dispute.network_reason_code
    if code is not None:
        card.network_reason_code = code
    return pb.DisputePaymentMethodDetails(type="card", card=card)
