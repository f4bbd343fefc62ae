"""Disputes (chargebacks) of captured charges, as frozen values and pure transitions.

A dispute opens once a captured charge's cardholder questions it with the issuer: in remit,
the network says so with the authorization of test card 4000000000000259, and the worker opens
the dispute after the capture (`remit.payments.expected_disputes`). As on Stripe, the issuer
takes the disputed amount back at once, and the dispute fee with it (`dispute_fee_minor`):
the merchant answers with evidence (`needs_response` -> `under_review`) or accepts the loss
(`lost`). Deciding a dispute under review is the issuer's, which remit simulates as Stripe's test
mode does: evidence whose `uncategorized_text` is `winning_evidence` wins the dispute (its
amount is reinstated), `losing_evidence` loses it (`decision_in_test_mode`), shortly after the
submission; with any other evidence the dispute stays under review.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Final, assert_never

from remit.core.errors import ErrorKind, RemitError, invalid
from remit.ledger.fees import fixed_fee_minor


class DisputeStatus(Enum):
    NEEDS_RESPONSE = "needs_response"
    UNDER_REVIEW = "under_review"
    WON = "won"
    LOST = "lost"


class DisputeReason(Enum):
    FRAUDULENT = "fraudulent"


# Stripe's evidence hash. The merchant gives text for these...
EVIDENCE_TEXT_FIELDS: Final = (
    "access_activity_log",
    "billing_address",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_tracking_number",
    "uncategorized_text",
)
# ...and the ids of file uploads for these, which remit does not take (it has no file uploads):
# they stay null.
EVIDENCE_FILE_FIELDS: Final = (
    "cancellation_policy",
    "customer_communication",
    "customer_signature",
    "duplicate_charge_documentation",
    "receipt",
    "refund_policy",
    "service_documentation",
    "shipping_documentation",
    "uncategorized_file",
)
# Stripe's limits: the explanations take long text, the rest a short string.
_LONG_EVIDENCE: Final = frozenset(
    {
        "access_activity_log",
        "cancellation_policy_disclosure",
        "cancellation_rebuttal",
        "duplicate_charge_explanation",
        "product_description",
        "refund_policy_disclosure",
        "refund_refusal_explanation",
        "uncategorized_text",
    }
)
LONG_EVIDENCE_LENGTH: Final = 150_000
SHORT_EVIDENCE_LENGTH: Final = 5_000
# Stripe bounds the evidence of one dispute as a whole, whatever the fields' own limits.
MAX_EVIDENCE_LENGTH: Final = 150_000

# The card networks give the merchant 7 to 21 days to answer; remit gives the shortest, so an
# integration that answers in time here answers in time on every network.
EVIDENCE_WINDOW: Final = timedelta(days=7)

# What the platform charges the merchant for handling a dispute: Stripe's US fee, $15.00,
# stated as the fixed part of the processing fee is (`remit.ledger.fees`: hundredths of a major
# unit) and taken as 15 major units of the dispute's currency, whatever its decimals: 1500
# cents, 15 yen, 15.000 KWD (`dispute_fee_minor`). A flat fee in the currency's own units, not
# an exchange-rate conversion of $15.00 (remit keeps no exchange rates); and never 1500 minor
# units whatever the currency, which would be ¥1,500 but 1.500 KWD.
DISPUTE_FEE_HUNDREDTHS: Final = 1500

# Each card network's reason code of a fraud dispute of a card-absent payment (every payment
# remit takes is one), by card brand: Visa 10.4 "Other Fraud: Card-Absent Environment",
# Mastercard 4837 "No Cardholder Authorization", American Express F29 "Card Not Present",
# Discover UA02 "Fraud: Card Not Present Transaction" (the fraud codes of Stripe's network code
# map, docs.stripe.com/disputes/categories). Another brand's code is not known here: shown null.
FRAUD_NETWORK_REASON_CODES: Final[Mapping[str, str]] = {
    "visa": "10.4",
    "mastercard": "4837",
    "amex": "F29",
    "discover": "UA02",
}


# Stripe's test mode decides a dispute by the `uncategorized_text` of the evidence submitted:
# exactly these values, nothing else (docs.stripe.com/testing#disputes).
WINNING_EVIDENCE: Final = "winning_evidence"
LOSING_EVIDENCE: Final = "losing_evidence"


def long_evidence(name: str) -> bool:
    """Whether an evidence text field takes long text (an explanation) or a short string."""
    return name in _LONG_EVIDENCE


def dispute_fee_minor(currency: str) -> int:
    """The dispute fee (`DISPUTE_FEE_HUNDREDTHS`) in `currency`'s minor units."""
    return fixed_fee_minor(DISPUTE_FEE_HUNDREDTHS, currency)


def network_reason_code(reason: DisputeReason, card_brand: str | None) -> str | None:
    """The card network's code of the dispute's reason, or None where it is not known."""
    match reason:
        case DisputeReason.FRAUDULENT:
            return FRAUD_NETWORK_REASON_CODES.get(card_brand or "")
        case unreachable:
            assert_never(unreachable)


@dataclass(frozen=True)
class Dispute:
    id: str
    account_id: str
    charge_id: str
    payment_intent_id: str
    amount_minor: int
    currency: str
    reason: DisputeReason
    status: DisputeStatus
    evidence_due_by: datetime
    created_at: datetime
    updated_at: datetime
    # The evidence text fields given so far, by Stripe's names.
    evidence: Mapping[str, str] = field(default_factory=dict)
    submission_count: int = 0
    past_due: bool = False
    # The money the dispute moved, oldest first: the withdrawal of its amount and fee, the
    # withdrawal of each refund of the charge that failed after it opened (`refund_failed`),
    # then, once won, the reinstatement of its amount.
    balance_transaction_ids: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    # The disputed charge's card brand ("visa"), which the network's reason code depends on;
    # None for a dispute opened by a process of the version before it was kept (see core
    # migration 0085).
    card_brand: str | None = None

    @property
    def has_evidence(self) -> bool:
        return bool(self.evidence)

    @property
    def network_reason_code(self) -> str | None:
        return network_reason_code(self.reason, self.card_brand)


def opened(
    *,
    dispute_id: str,
    account_id: str,
    charge_id: str,
    payment_intent_id: str,
    amount_minor: int,
    currency: str,
    card_brand: str,
    withdrawal_id: str,
    now: datetime,
) -> Dispute:
    """The dispute a cardholder opens against a captured charge: of what it captured and has
    not refunded, as fraud (the only reason the test card gives), waiting for the merchant's
    answer."""
    if amount_minor <= 0:
        raise ValueError("only money captured and not refunded can be disputed")
    return Dispute(
        id=dispute_id,
        account_id=account_id,
        charge_id=charge_id,
        payment_intent_id=payment_intent_id,
        amount_minor=amount_minor,
        currency=currency,
        reason=DisputeReason.FRAUDULENT,
        status=DisputeStatus.NEEDS_RESPONSE,
        evidence_due_by=now + EVIDENCE_WINDOW,
        created_at=now,
        updated_at=now,
        balance_transaction_ids=(withdrawal_id,),
        card_brand=card_brand,
    )


def _not_updatable(dispute: Dispute) -> RemitError:
    return RemitError(
        message=(
            f"This dispute is {dispute.status.value} and can no longer take evidence or be "
            "submitted."
        ),
        kind=ErrorKind.FAILED_PRECONDITION,
        code="dispute_not_updatable",
        param="evidence",
    )


def checked_evidence(evidence: Mapping[str, str]) -> dict[str, str]:
    """The evidence fields of an update, checked by name and length (an empty value clears
    its field)."""
    for name, value in evidence.items():
        if name in EVIDENCE_FILE_FIELDS:
            raise invalid(
                f"remit does not take file uploads: evidence[{name}] cannot be set.",
                f"evidence[{name}]",
            )
        if name not in EVIDENCE_TEXT_FIELDS:
            raise invalid(
                f"Received unknown parameter: evidence[{name}]",
                f"evidence[{name}]",
                code="parameter_unknown",
            )
        limit = LONG_EVIDENCE_LENGTH if name in _LONG_EVIDENCE else SHORT_EVIDENCE_LENGTH
        if len(value) > limit:
            raise invalid(
                f"Invalid string: evidence[{name}] must be at most {limit} characters long.",
                f"evidence[{name}]",
            )
    return dict(evidence)


def submits(submit: bool | None, evidence: Mapping[str, str]) -> bool:
    """Whether an update sends the dispute's evidence to the issuer: as its `submit` says or,
    not said, when it gives evidence (a field cleared counts), as Stripe's `submit` defaults
    to true. Stripe does not document whether an update of metadata alone submits the staged
    evidence: in remit it does not, so that labelling a dispute never answers it."""
    if submit is not None:
        return submit
    return bool(evidence)


def updated(
    dispute: Dispute,
    *,
    evidence: Mapping[str, str],
    metadata: Mapping[str, str],
    submit: bool | None,
    now: datetime,
) -> Dispute:
    """The dispute with the merchant's update: its metadata (any time), evidence merged in
    (an empty value clears a field) and, when the update submits (`submits`), the evidence
    sent to the issuer. Evidence and submissions are taken only while the dispute needs a
    response."""
    given = checked_evidence(evidence)
    submitting = submits(submit, given)
    if (given or submitting) and dispute.status is not DisputeStatus.NEEDS_RESPONSE:
        raise _not_updatable(dispute)
    merged = {**dispute.evidence, **given}
    kept = {name: value for name, value in merged.items() if value}
    if sum(len(value) for value in kept.values()) > MAX_EVIDENCE_LENGTH:
        raise invalid(
            f"The evidence of a dispute may hold at most {MAX_EVIDENCE_LENGTH} characters in all.",
            "evidence",
        )
    after = replace(dispute, evidence=kept, metadata=dict(metadata), updated_at=now)
    if not submitting:
        return after
    return replace(
        after,
        status=DisputeStatus.UNDER_REVIEW,
        submission_count=dispute.submission_count + 1,
        past_due=now > dispute.evidence_due_by,
    )


def accepted(dispute: Dispute, now: datetime) -> Dispute:
    """The merchant accepts the dispute (Stripe's close): it is lost, its money stays with the
    cardholder. Accepting a lost dispute again changes nothing."""
    match dispute.status:
        case DisputeStatus.LOST:
            return dispute
        case DisputeStatus.NEEDS_RESPONSE:
            return replace(dispute, status=DisputeStatus.LOST, updated_at=now)
        case DisputeStatus.UNDER_REVIEW | DisputeStatus.WON:
            raise RemitError(
                message=f"This dispute is {dispute.status.value} and can no longer be closed.",
                kind=ErrorKind.FAILED_PRECONDITION,
                code="dispute_not_closable",
            )
        case unreachable:
            assert_never(unreachable)


def decision_in_test_mode(dispute: Dispute) -> DisputeStatus | None:
    """How the issuer will decide a dispute under review, as Stripe's test mode does: won for
    the submitted `uncategorized_text` `winning_evidence`, lost for `losing_evidence`; None
    (it stays under review) for any other evidence, or a dispute not under review."""
    if dispute.status is not DisputeStatus.UNDER_REVIEW:
        return None
    text = dispute.evidence.get("uncategorized_text")
    if text == WINNING_EVIDENCE:
        return DisputeStatus.WON
    if text == LOSING_EVIDENCE:
        return DisputeStatus.LOST
    return None


def _decided(dispute: Dispute, status: DisputeStatus, now: datetime) -> Dispute:
    if dispute.status is not DisputeStatus.UNDER_REVIEW:
        raise ValueError(f"only a dispute under review is decided, not one {dispute.status.value}")
    return replace(dispute, status=status, updated_at=now)


def won(dispute: Dispute, *, reinstatement_id: str, now: datetime) -> Dispute:
    """The issuer decides the dispute under review for the merchant: the disputed amount comes
    back (the balance transaction `reinstatement_id`, after the withdrawal)."""
    decided = _decided(dispute, DisputeStatus.WON, now)
    return replace(
        decided, balance_transaction_ids=(*dispute.balance_transaction_ids, reinstatement_id)
    )


def lost(dispute: Dispute, now: datetime) -> Dispute:
    """The issuer decides the dispute under review for the cardholder: its money stays
    withdrawn."""
    return _decided(dispute, DisputeStatus.LOST, now)


def takes_failed_refunds(dispute: Dispute) -> bool:
    """Whether the money of a refund of the disputed charge that fails now goes to the
    dispute: unless the issuer decided the dispute for the merchant (won), whose charge is then
    the merchant's, money back included."""
    return dispute.status is not DisputeStatus.WON


def refund_failed(
    dispute: Dispute, *, amount_minor: int, withdrawal_id: str, now: datetime
) -> Dispute:
    """The dispute once a refund of its charge, made before it opened, failed afterwards.

    The dispute was of what the charge held then: captured less refunded. The failed refund
    gives its amount back to the charge and the merchant's balance, so the cardholder, who got
    neither that refund nor a dispute of it, disputes it too: the dispute's amount grows by it,
    and its withdrawal (`withdrawal_id`, after the others; no second fee) takes it. Refused for
    a dispute that takes no failed refund (`takes_failed_refunds`)."""
    if amount_minor <= 0:
        raise ValueError("a failed refund gives back a positive amount")
    if not takes_failed_refunds(dispute):
        raise ValueError(f"a dispute {dispute.status.value} takes no failed refund")
    return replace(
        dispute,
        amount_minor=dispute.amount_minor + amount_minor,
        balance_transaction_ids=(*dispute.balance_transaction_ids, withdrawal_id),
        updated_at=now,
    )
