"""PaymentIntents as frozen values; every change of state goes through a pure function here."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum


class Status(Enum):
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"


class CaptureMethod(Enum):
    AUTOMATIC = "automatic"
    AUTOMATIC_ASYNC = "automatic_async"
    MANUAL = "manual"


class ConfirmationMethod(Enum):
    AUTOMATIC = "automatic"
    MANUAL = "manual"


@dataclass(frozen=True)
class PaymentIntent:
    id: str
    account_id: str
    amount_minor: int
    currency: str
    status: Status
    capture_method: CaptureMethod
    confirmation_method: ConfirmationMethod
    client_secret: str
    created_at: datetime
    updated_at: datetime
    metadata: Mapping[str, str] = field(default_factory=dict)
    customer_id: str | None = None
    payment_method_id: str | None = None
    description: str | None = None
    receipt_email: str | None = None
    statement_descriptor: str | None = None
    statement_descriptor_suffix: str | None = None
    setup_future_usage: str | None = None
    amount_capturable_minor: int = 0
    amount_received_minor: int = 0
    latest_charge_id: str | None = None
    cancellation_reason: str | None = None
    canceled_at: datetime | None = None
    last_payment_error: Mapping[str, object] | None = None
    next_action: Mapping[str, object] | None = None


@dataclass(frozen=True)
class NewPaymentIntent:
    """The validated parameters of a create call."""

    amount_minor: int
    currency: str
    capture_method: CaptureMethod = CaptureMethod.AUTOMATIC
    confirmation_method: ConfirmationMethod = ConfirmationMethod.AUTOMATIC
    metadata: Mapping[str, str] = field(default_factory=dict)
    customer_id: str | None = None
    payment_method_id: str | None = None
    description: str | None = None
    receipt_email: str | None = None
    statement_descriptor: str | None = None
    statement_descriptor_suffix: str | None = None
    setup_future_usage: str | None = None


def initial_status(new: NewPaymentIntent) -> Status:
    """A new intent waits for a payment method, or, when it has one, for confirmation."""
    if new.payment_method_id is None:
        return Status.REQUIRES_PAYMENT_METHOD
    return Status.REQUIRES_CONFIRMATION


def create_intent(
    new: NewPaymentIntent, *, intent_id: str, account_id: str, client_secret: str, now: datetime
) -> PaymentIntent:
    return PaymentIntent(
        id=intent_id,
        account_id=account_id,
        amount_minor=new.amount_minor,
        currency=new.currency,
        status=initial_status(new),
        capture_method=new.capture_method,
        confirmation_method=new.confirmation_method,
        client_secret=client_secret,
        created_at=now,
        updated_at=now,
        metadata=dict(new.metadata),
        customer_id=new.customer_id,
        payment_method_id=new.payment_method_id,
        description=new.description,
        receipt_email=new.receipt_email,
        statement_descriptor=new.statement_descriptor,
        statement_descriptor_suffix=new.statement_descriptor_suffix,
        setup_future_usage=new.setup_future_usage,
    )
