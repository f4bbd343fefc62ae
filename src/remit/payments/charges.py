"""Charges (one per authorization attempt) and refunds, as frozen values."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum

from remit.core.metadata import updated_metadata


class ChargeStatus(Enum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RefundStatus(Enum):
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class RefundReason(Enum):
    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"
    REQUESTED_BY_CUSTOMER = "requested_by_customer"
    EXPIRED_UNCAPTURED_CHARGE = "expired_uncaptured_charge"


@dataclass(frozen=True)
class CardSnapshot:
    """What a charge remembers of its card: never the number, only what may be shown."""

    brand: str
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str | None = None
    funding: str | None = None
    country: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "brand": self.brand,
            "last4": self.last4,
            "exp_month": self.exp_month,
            "exp_year": self.exp_year,
            "fingerprint": self.fingerprint,
            "funding": self.funding,
            "country": self.country,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> "CardSnapshot":
        def text(name: str) -> str | None:
            value = data.get(name)
            return value if isinstance(value, str) else None

        exp_month, exp_year = data.get("exp_month"), data.get("exp_year")
        return cls(
            brand=text("brand") or "unknown",
            last4=text("last4") or "",
            exp_month=exp_month if isinstance(exp_month, int) else 0,
            exp_year=exp_year if isinstance(exp_year, int) else 0,
            fingerprint=text("fingerprint"),
            funding=text("funding"),
            country=text("country"),
        )


@dataclass(frozen=True)
class Charge:
    id: str
    account_id: str
    payment_intent_id: str
    amount_minor: int
    currency: str
    status: ChargeStatus
    payment_method_id: str
    card: CardSnapshot
    created_at: datetime
    updated_at: datetime
    amount_captured_minor: int = 0
    amount_refunded_minor: int = 0
    captured: bool = False
    capture_requested: bool = False
    # The authorization was released uncaptured (its intent canceled, or expired): the charge
    # keeps `captured: false` for good, and API versions before 2025-03-31 show the release as
    # refunded (see versions/v2025_03_31.py).
    authorization_released: bool = False
    customer_id: str | None = None
    outcome: Mapping[str, object] | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    decline_code: str | None = None
    authorization_id: str | None = None
    # When the network authorized it, which its authorization's expiry counts from (see
    # `PaymentsService.expire_authorization`); None when it did not, and for the charges
    # authorized before the time was kept.
    authorized_at: datetime | None = None
    network_result: Mapping[str, object] | None = None
    requested_capture_minor: int | None = None
    # How many captures of this charge have been asked of the network; the latest goes under
    # `capture_reference`. Charges made before the count was kept start at 1 (they may have
    # sent one under the first reference). A process of the version before the count asks for
    # a capture without counting it: see `captures_asked`.
    capture_attempts: int = 0
    # What a capture in progress asked to change besides the amount (the intent's metadata, the
    # charge's statement descriptors), recorded with the capture request and applied only with
    # its success; None when it asked for nothing else (see PaymentsService.resume_capture).
    requested_capture_changes: Mapping[str, object] | None = None
    description: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    # What Stripe copies onto a charge when it is made, and keeps as it was then: the payment
    # method's billing details, and the intent's receipt email, statement descriptors and
    # shipping. A later update of the intent or the payment method does not change them.
    billing_details: Mapping[str, object] = field(default_factory=dict)
    receipt_email: str | None = None
    statement_descriptor: str | None = None
    statement_descriptor_suffix: str | None = None
    shipping: Mapping[str, object] | None = None
    # Radar's verdict and the 3-D Secure state of the attempt (see payments/risk.py), and the
    # review Radar opened for it.
    risk: Mapping[str, object] | None = None
    authentication: Mapping[str, object] | None = None
    review_id: str | None = None
    # The balance transaction of the captured funds, named when the charge is captured; the
    # ledger writes it under this id in the same database transaction.
    balance_transaction_id: str | None = None
    # The dispute (dp_) the cardholder opened against the charge once it was captured
    # (`remit.payments.disputes`); a charge is disputed at most once.
    dispute_id: str | None = None

    @property
    def disputed(self) -> bool:
        return self.dispute_id is not None

    @property
    def refundable_minor(self) -> int:
        return self.amount_captured_minor - self.amount_refunded_minor

    @property
    def refunded(self) -> bool:
        return self.captured and self.amount_refunded_minor >= self.amount_captured_minor

    @property
    def captures_asked(self) -> int:
        """How many captures of the charge may have been asked of the network, so that the next
        one is given a reference none of them had.

        `capture_attempts`, but at least 1 once a capture was ever requested: a core of the
        version before the count was kept (core migration 0052), still running during the
        upgrade, sends its capture under `{charge}_capture` and leaves the count at 0 on a
        charge made since, while it records the amount asked (`requested_capture_minor`, which
        nothing ever clears) as every version does. Counted 0, the next capture would be the
        first and reuse that reference, which the network keeps for that capture, refused or
        not: the charge could never be captured."""
        asked_by_any_version = 1 if self.requested_capture_minor is not None else 0
        return max(self.capture_attempts, asked_by_any_version)

    @property
    def capture_reference(self) -> str:
        """The reference the latest capture of the charge is (or was) sent to the network
        under: see `capture_reference`."""
        return capture_reference(self.id, self.capture_attempts)


def capture_reference(charge_id: str, attempt: int) -> str:
    """The network reference of a charge's `attempt`-th capture.

    The network keeps whatever it answered under a reference, a refusal too, and refuses the
    reference for an operation with other parameters. So each capture asked for has its own: a
    capture after a refused one (another amount, say) must not reuse the refused one's. The
    first keeps the reference every capture had before they were counted, `{charge}_capture`,
    which is also what a capture still in flight from then is looked up by (its charge counts
    1, or 0 when an earlier process made it after the count was added). The next capture of
    a charge an earlier process asked a capture of is the second, whatever its count says
    (`Charge.captures_asked`)."""
    return f"{charge_id}_capture" if attempt <= 1 else f"{charge_id}_capture_{attempt}"


@dataclass(frozen=True)
class ChargeUpdate:
    """What a merchant may change on a charge once it is made (POST /v1/charges/{id}): what
    describes it, never its money. A string given empty clears its field, as Stripe's
    `description=` does; the metadata follows Stripe's update rules (`remit.core.metadata`)."""

    description: str | None = None
    receipt_email: str | None = None
    shipping: Mapping[str, object] | None = None
    clear_shipping: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)
    unset_metadata_keys: tuple[str, ...] = ()
    clear_metadata: bool = False


def updated_charge(charge: Charge, update: ChargeUpdate, at: datetime) -> Charge:
    """`charge` with `update` applied; refused when its metadata would exceed 50 keys."""
    return replace(
        charge,
        description=_replaced(charge.description, update.description),
        receipt_email=_replaced(charge.receipt_email, update.receipt_email),
        shipping=_replaced_shipping(charge.shipping, update),
        metadata=updated_metadata(
            charge.metadata,
            clear=update.clear_metadata,
            unset=update.unset_metadata_keys,
            values=update.metadata,
        ),
        updated_at=at,
    )


def _replaced_shipping(
    current: Mapping[str, object] | None, update: ChargeUpdate
) -> Mapping[str, object] | None:
    if update.clear_shipping:
        return None
    return current if update.shipping is None else update.shipping


def _replaced(current: str | None, given: str | None) -> str | None:
    """What a nullable string becomes: kept when not given, cleared when given empty."""
    if given is None:
        return current
    return given or None


@dataclass(frozen=True)
class Refund:
    id: str
    account_id: str
    charge_id: str
    payment_intent_id: str
    amount_minor: int
    currency: str
    status: RefundStatus
    created_at: datetime
    updated_at: datetime
    reason: RefundReason | None = None
    failure_reason: str | None = None
    acquirer_refund_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    # The balance transaction that debits the refund, named when the refund is created (as on
    # Stripe, a pending refund has already left the balance) and kept when it succeeds.
    balance_transaction_id: str | None = None
    # The refunded charge's customer and payment method (Stripe's refund shows both).
    customer_id: str | None = None
    payment_method_id: str | None = None
    # The refund_failure balance transaction that gives the money back, named when a refund
    # that debited the balance fails or is canceled.
    failure_balance_transaction_id: str | None = None


# A refund the acquirer has not settled yet: it may still succeed or fail.
UNSETTLED_REFUNDS = frozenset({RefundStatus.PENDING, RefundStatus.REQUIRES_ACTION})


def refunded_in_full(charge: Charge, refunds: Iterable[Refund]) -> bool:
    """Whether `refunds` (all of the charge's) have certainly given back all it captured: the
    succeeded ones cover it, and none is still unsettled. Not `Charge.refunded`, which counts
    the amounts pending refunds reserve: one of them may still fail, and the payment then
    stands in part."""
    settled = list(refunds)
    if any(refund.status in UNSETTLED_REFUNDS for refund in settled):
        return False
    succeeded = sum(r.amount_minor for r in settled if r.status is RefundStatus.SUCCEEDED)
    return charge.captured and succeeded >= charge.amount_captured_minor
