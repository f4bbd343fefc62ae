"""PaymentIntents as frozen values, and the state machine as one pure function.

Every change of state is `transition(intent, event)`. It either returns the next intent or
raises `UnexpectedStateError` naming the current status; nothing else in remit assigns
`status`. The legal moves are Stripe's (stripe-wire.md §8.1), plus one that Stripe leaves
implicit: while the card network is being asked, the intent is `processing`, so a second
confirmation cannot start a second authorization.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from typing import Final, assert_never

from remit.core import confirm_rules
from remit.core.currency import require_whole_charge_amount
from remit.core.errors import ErrorKind, RemitError
from remit.payments.minimum_charge import require_minimum_charge


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
    # Captured separately after authorization; remit's network settles both in one message,
    # so it behaves like AUTOMATIC towards the acquirer.
    AUTOMATIC_ASYNC = "automatic_async"
    MANUAL = "manual"


class ConfirmationMethod(Enum):
    AUTOMATIC = "automatic"
    MANUAL = "manual"


class CancellationReason(Enum):
    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"
    REQUESTED_BY_CUSTOMER = "requested_by_customer"
    ABANDONED = "abandoned"
    AUTOMATIC = "automatic"
    EXPIRED = "expired"
    FAILED_INVOICE = "failed_invoice"
    VOID_INVOICE = "void_invoice"


USER_CANCELLATION_REASONS = frozenset(
    {
        CancellationReason.DUPLICATE,
        CancellationReason.FRAUDULENT,
        CancellationReason.REQUESTED_BY_CUSTOMER,
        CancellationReason.ABANDONED,
    }
)


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
    # Stripe's `shipping` object (address, name, phone, carrier, tracking_number).
    shipping: Mapping[str, object] | None = None
    setup_future_usage: str | None = None
    return_url: str | None = None
    amount_capturable_minor: int = 0
    amount_received_minor: int = 0
    latest_charge_id: str | None = None
    cancellation_reason: CancellationReason | None = None
    canceled_at: datetime | None = None
    last_payment_error: Mapping[str, object] | None = None
    next_action: Mapping[str, object] | None = None
    # rev_ id of the Radar review of its payment, if one was opened.
    review_id: str | None = None
    # Stripe's `automatic_payment_methods` ({"enabled": ..., "allow_redirects": ...}); None
    # when the intent names its payment method types instead.
    automatic_payment_methods: Mapping[str, object] | None = None
    # The merchant's restriction of payment method types; None when not given.
    allowed_payment_method_types: tuple[str, ...] | None = None
    excluded_payment_method_types: tuple[str, ...] | None = None
    # payment_method_options.card.request_three_d_secure ("any", "automatic", "challenge"), as
    # set on create, update or confirm; a confirmation that names none asks for this one.
    request_three_d_secure: str | None = None


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
    shipping: Mapping[str, object] | None = None
    setup_future_usage: str | None = None
    return_url: str | None = None
    automatic_payment_methods: Mapping[str, object] | None = None
    allowed_payment_method_types: tuple[str, ...] | None = None
    excluded_payment_method_types: tuple[str, ...] | None = None
    request_three_d_secure: str | None = None


class UnexpectedStateError(RemitError):
    """An action that the intent's current status does not allow."""


def unexpected_state(intent: PaymentIntent, action: str) -> UnexpectedStateError:
    """The refusal naming the intent's status, about the intent: Stripe embeds the
    PaymentIntent in the error (the service presents it as the client sees it)."""
    return UnexpectedStateError(
        message=(
            f"You cannot {action} this PaymentIntent because it has a status of "
            f"{intent.status.value}."
        ),
        kind=ErrorKind.FAILED_PRECONDITION,
        code="payment_intent_unexpected_state",
        param=None,
        related=intent,
    )


# --- Events ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Updated:
    """Parameters changed by an update call (only the fields given)."""

    at: datetime
    amount_minor: int | None = None
    currency: str | None = None
    payment_method_id: str | None = None
    changes: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Annotated:
    """An update that changes only what describes the payment (its description; metadata is
    merged by the service alongside), which Stripe accepts after the money has moved too."""

    at: datetime
    changes: Mapping[str, object] = field(default_factory=dict)


# The fields an annotation may change (`Updated.changes` keys).
ANNOTATION_FIELDS: Final = frozenset({"description"})


def update_event(intent: PaymentIntent, update: Updated) -> "Updated | Annotated":
    """The event an update call is: an annotation when the intent no longer takes other
    updates (processing, succeeded) and the call changes nothing but its description and
    metadata; otherwise the update itself, refused there if the status does not allow it."""
    only_annotates = (
        update.amount_minor is None
        and update.currency is None
        and update.payment_method_id is None
        and set(update.changes) <= ANNOTATION_FIELDS
    )
    if only_annotates and intent.status not in ALLOWED_FROM[Updated]:
        return Annotated(at=update.at, changes=update.changes)
    return update


@dataclass(frozen=True)
class ConfirmationStarted:
    """A confirmation began a charge attempt; the network is being asked."""

    at: datetime
    payment_method_id: str
    charge_id: str
    capture_method: CaptureMethod | None = None
    return_url: str | None = None
    # The confirmation's own `setup_future_usage`, which replaces the intent's, or clears it
    # (Stripe's `setup_future_usage=`).
    setup_future_usage: str | None = None
    clear_setup_future_usage: bool = False
    # The confirmation's `receipt_email` and `shipping`, which replace the intent's (and so are
    # what its charge copies), or clear it (Stripe's `receipt_email=`, `shipping=`).
    receipt_email: str | None = None
    shipping: Mapping[str, object] | None = None
    clear_receipt_email: bool = False
    clear_shipping: bool = False
    # The confirmation's own restriction of payment method types, which replaces the intent's.
    allowed_payment_method_types: tuple[str, ...] | None = None
    excluded_payment_method_types: tuple[str, ...] | None = None
    # The confirmation's own request_three_d_secure, which replaces the intent's (as Stripe's
    # confirm parameters do); None keeps the intent's.
    request_three_d_secure: str | None = None


@dataclass(frozen=True)
class Authorized:
    at: datetime
    captured_minor: int  # 0 when only authorized (manual capture)


@dataclass(frozen=True)
class Declined:
    at: datetime
    error: Mapping[str, object]


@dataclass(frozen=True)
class ActionRequired:
    at: datetime
    next_action: Mapping[str, object]


@dataclass(frozen=True)
class ActionCompleted:
    """The customer finished the extra step; the network is asked again."""

    at: datetime


@dataclass(frozen=True)
class ActionFailed:
    at: datetime
    error: Mapping[str, object]


@dataclass(frozen=True)
class Captured:
    at: datetime
    amount_minor: int


@dataclass(frozen=True)
class Canceled:
    at: datetime
    reason: CancellationReason | None


@dataclass(frozen=True)
class Expired:
    at: datetime


Event = (
    Updated
    | Annotated
    | ConfirmationStarted
    | Authorized
    | Declined
    | ActionRequired
    | ActionCompleted
    | ActionFailed
    | Captured
    | Canceled
    | Expired
)

# Which statuses each kind of event may start from. The table-driven tests read this too.
ALLOWED_FROM: Mapping[type, frozenset[Status]] = {
    Updated: frozenset(
        {
            Status.REQUIRES_PAYMENT_METHOD,
            Status.REQUIRES_CONFIRMATION,
            Status.REQUIRES_ACTION,
            Status.REQUIRES_CAPTURE,
        }
    ),
    # Everything but canceled: after a cancellation every operation fails (stripe-wire.md
    # §8.1), while a payment that is processing or has succeeded may still be described.
    Annotated: frozenset(set(Status) - {Status.CANCELED}),
    ConfirmationStarted: frozenset({Status.REQUIRES_PAYMENT_METHOD, Status.REQUIRES_CONFIRMATION}),
    Authorized: frozenset({Status.PROCESSING}),
    Declined: frozenset({Status.PROCESSING}),
    ActionRequired: frozenset({Status.PROCESSING}),
    ActionCompleted: frozenset({Status.REQUIRES_ACTION}),
    ActionFailed: frozenset({Status.REQUIRES_ACTION}),
    Captured: frozenset({Status.REQUIRES_CAPTURE}),
    Canceled: frozenset(
        {
            Status.REQUIRES_PAYMENT_METHOD,
            Status.REQUIRES_CONFIRMATION,
            Status.REQUIRES_ACTION,
            Status.REQUIRES_CAPTURE,
        }
    ),
    Expired: frozenset({Status.REQUIRES_CAPTURE}),
}

_VERBS: Mapping[type, str] = {
    Updated: "update",
    Annotated: "update",
    ConfirmationStarted: "confirm",
    Authorized: "authorize",
    Declined: "decline",
    ActionRequired: "request an action on",
    ActionCompleted: "complete the action of",
    ActionFailed: "fail the action of",
    Captured: "capture",
    Canceled: "cancel",
    Expired: "expire",
}


def transition(intent: PaymentIntent, event: Event) -> PaymentIntent:
    """The intent after `event`, or UnexpectedStateError if its status does not allow it; an
    amount the event may not set (a capture beyond the capturable amount, an update below the
    currency's minimum charge) is refused with its own error."""
    if intent.status not in ALLOWED_FROM[type(event)]:
        raise unexpected_state(intent, _VERBS[type(event)])
    match event:
        case Updated():
            return _updated(intent, event)
        case Annotated():
            return replace(
                intent,
                updated_at=event.at,
                last_payment_error=None,
                **event.changes,  # type: ignore[arg-type]
            )
        case ConfirmationStarted():
            return replace(
                intent,
                status=Status.PROCESSING,
                payment_method_id=event.payment_method_id,
                capture_method=event.capture_method or intent.capture_method,
                return_url=event.return_url or intent.return_url,
                setup_future_usage=_confirmed_setup_future_usage(intent, event),
                receipt_email=_confirmed_receipt_email(intent, event),
                shipping=_confirmed_shipping(intent, event),
                allowed_payment_method_types=_confirmed_types(
                    event.allowed_payment_method_types, intent.allowed_payment_method_types
                ),
                excluded_payment_method_types=_confirmed_types(
                    event.excluded_payment_method_types, intent.excluded_payment_method_types
                ),
                request_three_d_secure=event.request_three_d_secure
                or intent.request_three_d_secure,
                latest_charge_id=event.charge_id,
                last_payment_error=None,
                next_action=None,
                updated_at=event.at,
            )
        case Authorized():
            if event.captured_minor > 0:
                return replace(
                    intent,
                    status=Status.SUCCEEDED,
                    amount_received_minor=event.captured_minor,
                    amount_capturable_minor=0,
                    next_action=None,
                    updated_at=event.at,
                )
            return replace(
                intent,
                status=Status.REQUIRES_CAPTURE,
                amount_capturable_minor=intent.amount_minor,
                next_action=None,
                updated_at=event.at,
            )
        case Declined() | ActionFailed():
            return replace(
                intent,
                status=Status.REQUIRES_PAYMENT_METHOD,
                payment_method_id=None,
                last_payment_error=dict(event.error),
                next_action=None,
                updated_at=event.at,
            )
        case ActionRequired():
            return replace(
                intent,
                status=Status.REQUIRES_ACTION,
                next_action=dict(event.next_action),
                updated_at=event.at,
            )
        case ActionCompleted():
            if intent.confirmation_method is ConfirmationMethod.MANUAL:
                next_status = Status.REQUIRES_CONFIRMATION
            else:
                next_status = Status.PROCESSING
            return replace(intent, status=next_status, next_action=None, updated_at=event.at)
        case Captured():
            if event.amount_minor < 1:
                raise RemitError(
                    message=(
                        f"The amount to capture ({event.amount_minor}) must be between 1 and "
                        f"the capturable amount ({intent.amount_capturable_minor})."
                    ),
                    code="amount_too_small",
                    param="amount_to_capture",
                )
            if event.amount_minor > intent.amount_capturable_minor:
                raise _more_than_capturable(intent, event.amount_minor)
            return replace(
                intent,
                status=Status.SUCCEEDED,
                amount_received_minor=event.amount_minor,
                amount_capturable_minor=0,
                updated_at=event.at,
            )
        case Canceled():
            return _canceled(intent, event.reason, event.at)
        case Expired():
            return _canceled(intent, CancellationReason.EXPIRED, event.at)
        case _:
            assert_never(event)


def _more_than_capturable(intent: PaymentIntent, amount_minor: int) -> RemitError:
    """A capture of more than the intent holds capturable. Unlike an amount below 1, which no
    intent could capture, this is a refusal by the intent's state, about the intent: stored
    under the request's key as the service stores those (`payments.keyed.is_stored_refusal`),
    so the key's one answer stays this refusal even were more to become capturable. On the
    REST API it stays a 400 invalid_request_error, as a refund of too much is."""
    return RemitError(
        message=(
            f"The amount to capture ({amount_minor}) must be between 1 and "
            f"the capturable amount ({intent.amount_capturable_minor})."
        ),
        kind=ErrorKind.FAILED_PRECONDITION,
        code="amount_too_large",
        param="amount_to_capture",
        related=intent,
    )


def _confirmed_setup_future_usage(intent: PaymentIntent, event: ConfirmationStarted) -> str | None:
    if event.clear_setup_future_usage:
        return None
    return event.setup_future_usage or intent.setup_future_usage


def _confirmed_receipt_email(intent: PaymentIntent, event: ConfirmationStarted) -> str | None:
    if event.clear_receipt_email:
        return None
    return event.receipt_email or intent.receipt_email


def _confirmed_shipping(
    intent: PaymentIntent, event: ConfirmationStarted
) -> Mapping[str, object] | None:
    if event.clear_shipping:
        return None
    return intent.shipping if event.shipping is None else dict(event.shipping)


def _canceled(
    intent: PaymentIntent, reason: CancellationReason | None, at: datetime
) -> PaymentIntent:
    return replace(
        intent,
        status=Status.CANCELED,
        cancellation_reason=reason,
        canceled_at=at,
        amount_capturable_minor=0,
        next_action=None,
        updated_at=at,
    )


def _updated(intent: PaymentIntent, event: Updated) -> PaymentIntent:
    money_changes = event.amount_minor is not None or event.currency is not None
    if intent.status is Status.REQUIRES_CAPTURE and (
        money_changes or event.payment_method_id is not None
    ):
        raise unexpected_state(intent, "update the amount or payment method of")
    # Stripe: the last payment error "will be cleared if the PaymentIntent is later updated
    # for any reason" (metadata alone included).
    updated = replace(
        intent,
        updated_at=event.at,
        last_payment_error=None,
        **event.changes,  # type: ignore[arg-type]
    )
    if event.amount_minor is not None:
        updated = replace(updated, amount_minor=event.amount_minor)
    if event.currency is not None:
        updated = replace(updated, currency=event.currency)
    require_a_usable_payment_method_type(updated)
    if money_changes:
        # A new currency can leave the amount below that currency's minimum just as a new
        # amount can, so the pair the intent ends with is what is checked.
        require_minimum_charge(updated.amount_minor, updated.currency)
        require_whole_charge_amount(updated.amount_minor, updated.currency, "amount")
    if event.payment_method_id is not None:
        # A new payment method has to be confirmed again before it is charged.
        updated = replace(
            updated,
            payment_method_id=event.payment_method_id,
            status=Status.REQUIRES_CONFIRMATION,
            next_action=None,
        )
    elif intent.status is Status.REQUIRES_ACTION and (
        money_changes
        or updated.setup_future_usage != intent.setup_future_usage
        or updated.customer_id != intent.customer_id
    ):
        # The waiting challenge shows, and its attempt would authorize, the old amount; its
        # attempt tells the network whether the card is being set up for off-session payments
        # as the confirmation said; and its card was checked against the customer the intent
        # had then (a saved card pays only its own customer's intents). Each change has to be
        # confirmed (and authenticated) again.
        updated = replace(updated, status=Status.REQUIRES_CONFIRMATION, next_action=None)
    return updated


def _confirmed_types(
    given: tuple[str, ...] | None, stored: tuple[str, ...] | None
) -> tuple[str, ...] | None:
    """A confirmation's list of payment method types: None keeps the intent's, an empty one
    clears it (no restriction), any other replaces it."""
    if given is None:
        return stored
    return given or None


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
        shipping=None if new.shipping is None else dict(new.shipping),
        setup_future_usage=new.setup_future_usage,
        return_url=new.return_url,
        automatic_payment_methods=None
        if new.automatic_payment_methods is None
        else dict(new.automatic_payment_methods),
        allowed_payment_method_types=new.allowed_payment_method_types,
        excluded_payment_method_types=new.excluded_payment_method_types,
        request_three_d_secure=new.request_three_d_secure,
    )


# --- Payment method types ----------------------------------------------------------------

# What remit's network can charge: any other type a merchant allows is left out of the
# intent's `payment_method_types`, as Stripe leaves out the ones incompatible with a payment.
PROCESSABLE_PAYMENT_METHOD_TYPES: Final = ("card",)
# payment_method_options.card.request_three_d_secure of an intent that never set one: what a
# confirmation naming none asks for, and what Stripe shows on such an intent.
AUTOMATIC_THREE_D_SECURE: Final = "automatic"


def usable_payment_method_types(intent: PaymentIntent | NewPaymentIntent) -> list[str]:
    """The types the intent may be paid with: those remit processes, narrowed to the allowed
    ones when a list was given, less the excluded ones."""
    allowed = intent.allowed_payment_method_types
    excluded = set(intent.excluded_payment_method_types or ())
    return [
        kind
        for kind in PROCESSABLE_PAYMENT_METHOD_TYPES
        if (allowed is None or kind in allowed) and kind not in excluded
    ]


def require_a_usable_payment_method_type(intent: PaymentIntent | NewPaymentIntent) -> None:
    """Refuse an intent whose allowed and excluded types leave nothing remit can charge: it
    could never be paid, and an empty `payment_method_types` is not a state Stripe shows."""
    if usable_payment_method_types(intent):
        return
    processable = ", ".join(PROCESSABLE_PAYMENT_METHOD_TYPES)
    allowed = intent.allowed_payment_method_types
    if allowed is not None and not set(allowed) & set(PROCESSABLE_PAYMENT_METHOD_TYPES):
        raise RemitError(
            message=(
                f"None of the allowed_payment_method_types ({', '.join(allowed)}) can be used: "
                f"remit processes {processable} only."
            ),
            code="parameter_invalid",
            param="allowed_payment_method_types",
        )
    raise RemitError(
        message=(
            "excluded_payment_method_types excludes every payment method type this "
            f"PaymentIntent could use; remit processes {processable} only."
        ),
        code="parameter_invalid",
        param="excluded_payment_method_types",
    )


# --- Automatic payment methods at confirmation ------------------------------------------


def automatic_payment_methods_on(intent: PaymentIntent) -> bool:
    automatic = intent.automatic_payment_methods
    return automatic is not None and automatic.get("enabled") is True


def may_redirect(intent: PaymentIntent) -> bool:
    """Whether confirming may send the customer away (`confirm_rules.may_redirect`)."""
    automatic = intent.automatic_payment_methods or {}
    allow_redirects = automatic.get("allow_redirects")
    return confirm_rules.may_redirect(
        automatic=automatic_payment_methods_on(intent),
        allow_redirects=allow_redirects if isinstance(allow_redirects, str) else None,
    )


def require_return_url(intent: PaymentIntent, *, return_url: str | None, off_session: bool) -> None:
    """A confirmation that may redirect the customer needs somewhere to send them back to."""
    confirm_rules.require_return_url(
        redirects=may_redirect(intent),
        return_url=return_url,
        kept_return_url=intent.return_url,
        off_session=off_session,
    )


def refuse_error_on_requires_action(
    intent: PaymentIntent, *, error_on_requires_action: bool
) -> None:
    """`error_on_requires_action` only for an intent whose payment method types are named."""
    confirm_rules.refuse_error_on_requires_action(
        automatic=automatic_payment_methods_on(intent),
        error_on_requires_action=error_on_requires_action,
    )
