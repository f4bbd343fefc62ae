"""Payment use cases. Each step is one transaction; this is the only module that commits.

Mutating calls run under an idempotency key (`KeyedCall`) and move through recovery points:
`started` (the key is claimed), `attempt_created` (the intent and its charge attempt exist, the
intent is `processing`), `authorization_done` (the network's answer is stored on the charge),
`finished` (the answer is applied and the response stored for replay). The call to the network
happens between `attempt_created` and `authorization_done`, outside any transaction, with the
charge id as its reference; a call whose outcome is unknown is settled by looking that
reference up, never by asking the network to authorize again.
"""

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Concatenate, Final, ParamSpec, TypeVar

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import Clock, SystemClock
from remit.core.currency import SUPPORTED_CURRENCIES, require_whole_charge_amount
from remit.core.errors import ErrorKind, RemitError, invalid, not_found
from remit.core.ids import new_id, random_token
from remit.core.metadata import merged_metadata, updated_metadata
from remit.core.statement_descriptors import refuse_invalid_payment_descriptors
from remit.customers.repository import SqlCustomerRepository
from remit.grpcutil.deadlines import has_time_for
from remit.payment_methods.domain import (
    another_customers_method,
    spent_elsewhere,
    spent_payment_method,
)
from remit.payments import idempotency
from remit.payments.abandoned_attempts import (
    LeftBy,
    authenticated_for,
    finish_left_behind,
    left_by_update,
)
from remit.payments.after_the_network import recorded_after_the_network
from remit.payments.answer_phase import store_answer_and_advance
from remit.payments.attempt_lock import lock_attempt
from remit.payments.authorization_age import (
    answered_at,
    authorization_expires_at,
    check_expired,
    network_authorized_at,
)
from remit.payments.charge_refunds import ChargeRefunds, read_refunds, read_refunds_of_charges
from remit.payments.charges import (
    Charge,
    ChargeStatus,
    ChargeUpdate,
    Refund,
    RefundReason,
    RefundStatus,
    refunded_in_full,
    updated_charge,
)
from remit.payments.crashpoints import crash_after
from remit.payments.disputing import DisputesService
from remit.payments.domain import (
    ALLOWED_FROM,
    USER_CANCELLATION_REASONS,
    ActionRequired,
    Authorized,
    Canceled,
    CancellationReason,
    Captured,
    CaptureMethod,
    ConfirmationStarted,
    Declined,
    Expired,
    NewPaymentIntent,
    PaymentIntent,
    Status,
    Updated,
    create_intent,
    refuse_error_on_requires_action,
    require_a_usable_payment_method_type,
    require_return_url,
    transition,
    unexpected_state,
    update_event,
)
from remit.payments.embedded_budget import EMBEDDED_ANSWER_BYTES
from remit.payments.held_requests import (
    HeldRequest,
    Retried,
    RetryOutcome,
    failure_of,
    held_request,
    held_requests,
    note_failure,
    retryable,
)
from remit.payments.idempotency import KeyRecord, RecoveryPoint
from remit.payments.key_heartbeat import key_kept_held
from remit.payments.keyed import Done as Done
from remit.payments.keyed import Keyed, is_stored_refusal, run_keyed, store_refusal, stored_error
from remit.payments.keyed import KeyedCall as KeyedCall
from remit.payments.keyed import Replay as Replay
from remit.payments.keyed import replay_of as replay_of
from remit.payments.lookup_expectations import (
    expected_authorization,
    expected_capture,
    expected_refund,
    expected_void,
)
from remit.payments.minimum_charge import require_minimum_charge
from remit.payments.network import (
    AuthorizationOutcome,
    CardNetwork,
    OperationOutcome,
    OutcomeUnknownError,
    StoredCredential,
    card_key_unavailable,
    network_holds_reference_for_other_parameters,
    network_unavailable,
    reference_conflict,
    unusable_card_answer,
    vault_lacks_card_key,
    vault_will_not_open_card,
    with_capture_fee,
)
from remit.payments.ports import (
    Challenge,
    ChargeableCard,
    HookChain,
    NewCard,
    NoRadar,
    Paying,
    PaymentEnd,
    PaymentHooks,
    PaymentMethodSource,
    RadarGate,
    attempt_facts,
    save_card_in,
)
from remit.payments.repository import (
    Budget,
    ChargeRepository,
    FirstPages,
    PaymentIntentRepository,
    RefundRepository,
)
from remit.payments.requests import note_request
from remit.payments.risk import (
    AUTHENTICATION_REQUIRED,
    REVIEW,
    Authentication,
    RiskVerdict,
    needs_authentication,
    network_reference,
    outcome_json,
    stand_in_result,
)
from remit.payments.send_budget import LOOKUP_NEEDS_S
from remit.payments.step_bounds import SETTLE_ATTEMPTS, SETTLE_PAUSE_S
from remit.storage.driver_errors import DatabaseFault, database_fault
from remit.storage.engine import batched_unit, single_statement
from remit.storage.outages import log_failure
from remit.storage.pagination import ANY_TIME, CreatedBounds, Cursor, cursor_for
from remit.worker.jobs import stage_job

log = logging.getLogger(__name__)

MAX_AMOUNT_MINOR = 99_999_999
MAX_LIST_LIMIT = 100
EXPIRE_JOB = "payments.expire_authorization"
# How long an expiry whose attempts all failed waits before it is tried again.
EXPIRY_RETRY_AFTER = timedelta(hours=1)
# The test crash switch's points between the network's answer and its storing (crashpoints.py):
# the operation has happened at the network, and nothing says so here yet.
AUTHORIZATION_ANSWERED = "authorization_answered"
CAPTURE_ANSWERED = "capture_answered"
REFUND_ANSWERED = "refund_answered"
# Both a cancel's release and the expiry job's (`_void`).
VOID_ANSWERED = "void_answered"
# An unfinished request this old is reported at every try of the completer (see
# `complete_abandoned`): far longer than any outage the completer rides out by itself. Past its
# first hour a key is tried at most hourly (`idempotency.abandoned_keys`), so it is reported
# at most hourly too, however long it stays stuck.
UNFINISHED_ALERT_AGE = timedelta(hours=4)

T = TypeVar("T")
P = ParamSpec("P")


class StepLeftAlone(asyncio.CancelledError):
    """The caller was cancelled while its network step ran: the step (`step`) goes on alone,
    and does what the caller would have done after it (a request's key released) once it ends
    (see `PaymentsService._outliving_its_caller`). A cancellation all the same, for whoever
    cancelled the caller, who may leave a step of its own to follow it
    (`PaymentsService.follow_step_left_alone`)."""

    def __init__(self, step: "asyncio.Task[Any]") -> None:
        super().__init__()
        self.step = step


class PaymentsError(RemitError):
    """Root of the errors the payments service raises."""


@dataclass(frozen=True)
class NetworkAsk:
    """What the network is asked for one attempt: built from the rows `_start_attempt` has just
    written when the same request carries on, read back from the database when resuming.

    `vault_token` is None when resuming: the card is found only if the authorization has to
    be sent after all (the network has no record of it), so an attempt the network answered
    is finished whatever has become of its payment method since."""

    charge: Charge
    intent_id: str
    capture: bool
    vault_token: str | None


@dataclass(frozen=True)
class ConfirmParams:
    payment_method_id: str | None = None
    capture_method: CaptureMethod | None = None
    return_url: str | None = None
    off_session: bool = False
    error_on_requires_action: bool = False
    # payment_method_options.card.request_three_d_secure ("any", "challenge", "automatic").
    request_three_d_secure: str | None = None
    # The client's SDK handles the next action in place (see `authentication_action`).
    use_stripe_sdk: bool = False
    # Replaces the intent's, or clears it (`setup_future_usage=`), as an update does.
    setup_future_usage: str | None = None
    clear_setup_future_usage: bool = False
    # Replace the intent's (Stripe's confirm parameters), or clear it (`receipt_email=`,
    # `shipping=`); the new charge copies the result.
    receipt_email: str | None = None
    shipping: Mapping[str, object] | None = None
    clear_receipt_email: bool = False
    clear_shipping: bool = False
    # Replace the intent's restriction of payment method types; empty: lift it.
    allowed_payment_method_types: tuple[str, ...] | None = None
    # The confirmation writes `payment_method_types` (accounts on versions before endive): the
    # types are chosen explicitly, so automatic payment methods go off, as on a create naming
    # them.
    names_payment_method_types: bool = False
    excluded_payment_method_types: tuple[str, ...] | None = None

    @property
    def changes_receipt_or_shipping(self) -> bool:
        return (
            self.receipt_email is not None
            or self.shipping is not None
            or self.clear_receipt_email
            or self.clear_shipping
        )


def _check_embedded(parent_ids: Sequence[str], limit: int, param: str) -> None:
    """At most the ids of one page of objects, and at most a page of what each embeds."""
    if len(parent_ids) > MAX_LIST_LIMIT:
        raise invalid(f"At most {MAX_LIST_LIMIT} {param} can be asked at once.", param)
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise invalid("limit must be between 1 and 100.", "limit")


def set_and_cleared(param: str) -> RemitError:
    """The refusal of a request that both sets `param` and clears it (Stripe's `param=`)."""
    return invalid(f"Pass either {param} or an empty {param} to clear it, not both.", param)


def validate_confirm(confirm: ConfirmParams) -> None:
    """A confirmation may set or clear its receipt email, shipping and setup_future_usage, not
    both at once."""
    if confirm.clear_receipt_email and confirm.receipt_email:
        raise invalid(
            "Pass either a receipt_email or an empty receipt_email to clear it, not both.",
            "receipt_email",
        )
    if confirm.clear_shipping and confirm.shipping is not None:
        raise set_and_cleared("shipping")
    if confirm.clear_setup_future_usage and confirm.setup_future_usage is not None:
        raise set_and_cleared("setup_future_usage")


@dataclass(frozen=True)
class CaptureParams:
    """What a capture changes besides the amount: the intent's metadata (Stripe's update rules:
    `clear_metadata` first, then `unset_metadata_keys`, then `metadata`), and the statement
    descriptors of the charge it captures. Like the capture itself, they take effect only if
    the network captures: they are recorded on the charge with the capture request
    (`as_json`) and applied with the network's approval."""

    metadata: Mapping[str, str] = field(default_factory=dict)
    unset_metadata_keys: tuple[str, ...] = ()
    clear_metadata: bool = False
    statement_descriptor: str | None = None
    statement_descriptor_suffix: str | None = None

    @property
    def changes_metadata(self) -> bool:
        return bool(self.metadata or self.unset_metadata_keys or self.clear_metadata)

    @property
    def changes_descriptors(self) -> bool:
        return self.statement_descriptor is not None or self.statement_descriptor_suffix is not None

    def as_json(self) -> dict[str, object] | None:
        """The stored form (`Charge.requested_capture_changes`); None when nothing changes."""
        if not (self.changes_metadata or self.changes_descriptors):
            return None
        return {
            "metadata": dict(self.metadata),
            "unset_metadata_keys": list(self.unset_metadata_keys),
            "clear_metadata": self.clear_metadata,
            "statement_descriptor": self.statement_descriptor,
            "statement_descriptor_suffix": self.statement_descriptor_suffix,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object] | None) -> "CaptureParams":
        if data is None:
            return _NO_CAPTURE_PARAMS
        metadata, unset = data.get("metadata"), data.get("unset_metadata_keys")
        return cls(
            metadata={str(k): str(v) for k, v in metadata.items()}
            if isinstance(metadata, dict)
            else {},
            unset_metadata_keys=tuple(str(k) for k in unset) if isinstance(unset, list) else (),
            clear_metadata=data.get("clear_metadata") is True,
            statement_descriptor=_text(data.get("statement_descriptor")),
            statement_descriptor_suffix=_text(data.get("statement_descriptor_suffix")),
        )

    def _metadata_change(self) -> dict[str, Any]:
        return {
            "clear": self.clear_metadata,
            "unset": self.unset_metadata_keys,
            "values": self.metadata,
        }

    def check_metadata(self, metadata: Mapping[str, str]) -> None:
        """Refuse the capture (400 naming `metadata`) if its change would leave `metadata` with
        more than 50 keys: checked when it is requested, before anything is written or sent."""
        if self.changes_metadata:
            updated_metadata(metadata, **self._metadata_change())

    def applied(self, intent: PaymentIntent) -> PaymentIntent:
        """The intent with this capture's metadata change, once the network has captured.

        The limit was checked when the capture was requested, and an update adding keys while
        the capture waits is checked against this change too
        (`_refuse_passing_a_capture_in_flight`), so the merge stays within it.
        """
        if not self.changes_metadata:
            return intent
        return replace(intent, metadata=merged_metadata(intent.metadata, **self._metadata_change()))

    def described(self, charge: Charge) -> Charge:
        """The charge with the descriptors this capture names (the others as they were)."""
        if not self.changes_descriptors:
            return charge
        return replace(
            charge,
            statement_descriptor=self.statement_descriptor or charge.statement_descriptor,
            statement_descriptor_suffix=self.statement_descriptor_suffix
            or charge.statement_descriptor_suffix,
        )


_NO_CAPTURE_PARAMS = CaptureParams()


def card_error(
    outcome_code: str | None,
    decline_code: str | None,
    message: str | None,
    *,
    charge_id: str,
    intent: object,
    payment_method_id: str | None,
) -> RemitError:
    return RemitError(
        message=message or "Your card was declined.",
        kind=ErrorKind.CARD_DECLINED,
        error_type="card_error",
        code=outcome_code or "card_declined",
        decline_code=decline_code,
        charge=charge_id,
        related=intent,
        extra={"payment_method": payment_method_id or ""},
    )


def validate_new_intent(new: NewPaymentIntent) -> None:
    """Refuse a create before anything is claimed or stored."""
    if new.currency not in SUPPORTED_CURRENCIES:
        raise invalid(f"Invalid currency: {new.currency}.", "currency", code="invalid_currency")
    require_minimum_charge(new.amount_minor, new.currency)
    require_whole_charge_amount(new.amount_minor, new.currency, "amount")
    _refuse_too_large(new.amount_minor)
    require_a_usable_payment_method_type(new)
    refuse_invalid_payment_descriptors(new.statement_descriptor, new.statement_descriptor_suffix)


def validate_update(update: Updated) -> None:
    """Refuse an update's own values before anything is claimed or stored: what it sets, not
    what the intent holds (an intent stored with a descriptor of older rules still updates).
    The minimum depends on the currency the intent is left with: the domain checks it."""
    if update.amount_minor is not None:
        _refuse_too_large(update.amount_minor)
    if update.currency is not None and update.currency not in SUPPORTED_CURRENCIES:
        raise invalid(f"Invalid currency: {update.currency}.", "currency", code="invalid_currency")
    # A descriptor cleared is None in the changes, and passes.
    refuse_invalid_payment_descriptors(
        _text(update.changes.get("statement_descriptor")),
        _text(update.changes.get("statement_descriptor_suffix")),
    )


def _refuse_too_large(amount_minor: int) -> None:
    if amount_minor > MAX_AMOUNT_MINOR:
        raise invalid(
            f"Amount must be no more than {MAX_AMOUNT_MINOR}.", "amount", code="amount_too_large"
        )


async def _mark_released(
    charges: ChargeRepository, account_id: str, charge_id: str, now: datetime
) -> tuple[Charge, Charge]:
    """Record on the charge that its authorization was released uncaptured; the charge before
    and after."""
    charge = await charges.get(account_id, charge_id, for_update=True)
    assert charge is not None
    released = replace(charge, authorization_released=True, updated_at=now)
    await charges.save(released)
    return charge, released


def _captured_first(released: OperationOutcome) -> bool:
    """A release the network refused because the authorization was captured meanwhile (a
    capture racing the cancel or the expiry). Any other refusal (already voided) means the
    authorization is released all the same."""
    return not released.approved and released.code == "charge_already_captured"


def _capture_refusal(intent: PaymentIntent, operation: OperationOutcome) -> RemitError:
    """The answer to a capture the network refused, given the intent as it is now.

    A capture that lost a race to a cancel (the cancel's release reached the network first,
    which then refuses the capture as `authorization_voided`) finds the intent canceled by
    the time it records the refusal. Its answer is then the one any capture of a canceled
    intent gets, as Stripe gives it: `payment_intent_unexpected_state` naming the status, with
    the intent. The network's own code is no Stripe code, and without the intent the client
    cannot tell the payment was canceled rather than failed to capture."""
    if intent.status not in ALLOWED_FROM[Captured]:
        return unexpected_state(intent, "capture")
    return RemitError(
        message=operation.message or "The capture was refused by the card network.",
        kind=ErrorKind.FAILED_PRECONDITION,
        code=operation.code or "charge_expired_for_capture",
    )


def _authorization_expired(intent: PaymentIntent) -> RemitError:
    """A capture asked for once the authorization's 7 days have passed, before the expiry job
    has released it (the job runs late: the worker was down, or the network refused the
    release). The merchant may capture only until then (`remit.payments.authorization_age`):
    the funds are held for 7 days, and the ledger's reservation of them ends then too. The
    capture is refused as Stripe refuses one of an expired authorization, about the intent,
    which is left as it is for the job to release and expire (voiding at the network, which a
    capture request should not wait on), as it would have been had the job run on time."""
    return RemitError(
        message=f"This PaymentIntent ({intent.id}) cannot be captured: its authorization has "
        "expired. An uncaptured payment must be captured within 7 days of its authorization.",
        kind=ErrorKind.FAILED_PRECONDITION,
        code="charge_expired_for_capture",
        related=intent,
    )


class _AuthorizationExpiredBeforeSendingError(Exception):
    """A capture not sent: the authorization's 7 days passed before it reached the network."""


def _already_captured(intent: PaymentIntent) -> RemitError:
    """A cancel refused because a capture reached the network first; about the intent, which
    it carries as every refusal by an intent's state does."""
    return RemitError(
        message=f"This PaymentIntent ({intent.id}) was captured before its authorization could "
        "be released, so it cannot be canceled; refund it instead.",
        kind=ErrorKind.FAILED_PRECONDITION,
        code="payment_intent_unexpected_state",
        related=intent,
    )


# Stripe's values of a refund's failure_reason. A refund keeps the network's own code; one
# outside them (the acquirer's refusals say remit and the network disagree on what is
# refundable) is shown as `unknown`.
REFUND_FAILURE_REASONS: Final = frozenset(
    {
        "lost_or_stolen_card", "expired_or_canceled_card", "charge_for_pending_refund_disputed",
        "insufficient_funds", "declined", "merchant_request", "unknown",
    }
)  # fmt: skip


def refund_failure_reason(network_code: str | None) -> str:
    return network_code if network_code in REFUND_FAILURE_REASONS else "unknown"


async def _require_live_customer(
    db: AsyncConnection, account_id: str, customer_id: str | None
) -> None:
    """An intent may name only a customer of its account that exists and is not deleted."""
    if (
        customer_id is not None
        and await SqlCustomerRepository(db).get(account_id, customer_id) is None
    ):
        raise not_found("customer", customer_id, param="customer")


async def _refuse_passing_a_capture_in_flight(db: AsyncConnection, updated: PaymentIntent) -> None:
    """A capture at the network applies its metadata change when the network approves it, on
    top of whatever the intent holds then. An update adding keys meanwhile is checked against
    that change as well, so the capture cannot leave more than 50 keys (it could not refuse
    them any more: the money has moved by then)."""
    if updated.status is not Status.REQUIRES_CAPTURE or updated.latest_charge_id is None:
        return
    charge = await ChargeRepository(db).get(updated.account_id, updated.latest_charge_id)
    if charge is not None and charge.capture_requested:
        CaptureParams.from_json(charge.requested_capture_changes).check_metadata(updated.metadata)


def _refuse_another_customers_card(intent: PaymentIntent, card: ChargeableCard) -> None:
    """A payment method saved to a customer pays only that customer's intents: not another
    customer's, and not an intent with no customer (which would charge a saved card without
    its customer being named). Refused by the card's state (FAILED_PRECONDITION, stored under
    the request's key: it may be attached to the intent's customer, or the intent made that
    customer's, before a retry)."""
    owner = card.customer_id
    if owner is None or owner == intent.customer_id:
        return
    raise another_customers_method(card.payment_method_id, owner, intent.customer_id)


def _refuse_a_spent_card(intent_id: str, card: ChargeableCard) -> None:
    """A payment method used to confirm an intent while attached to no customer pays that
    intent only (Stripe: it must be attached to a customer first to be used again). Refused
    by the card's state, stored under the request's key like `_refuse_another_customers_card`'s
    refusal: the intent that spent it may yet save it, and it may then be attached."""
    if spent_elsewhere(card.customer_id, card.spent_by_intent_id, intent_id):
        raise spent_payment_method()


def _spends_its_card(intent: PaymentIntent) -> bool:
    """Whether confirming `intent` spends a payment method attached to no customer: not when
    the payment attaches it to the intent's customer once it goes through (Stripe's
    `setup_future_usage`), which makes it the customer's to use again."""
    return intent.setup_future_usage is None or intent.customer_id is None


def named_with_its_card(intent: PaymentIntent) -> Paying:
    """What a create or an update that names a saved card for `intent` (as the request leaves
    it), without confirming, checks the card against under its row lock: the copy checked
    before was read before the request's transaction, and a detach, its customer's deletion or
    an attach may have come since. Not spent: the confirmation that pays with it spends it."""
    return Paying(intent.id, intent.customer_id, spends=False)


def paying_with_its_card(intent: PaymentIntent) -> Paying:
    """What an attempt that pays `intent` (as the attempt leaves it) checks its saved card
    against, under the card's row lock (`save_card_in`): a confirmation's, or the
    authenticated one a passed 3-D Secure challenge goes on with."""
    return Paying(intent.id, intent.customer_id, spends=_spends_its_card(intent))


def _sets_up_off_session(intent: PaymentIntent, off_session: bool) -> bool:
    """Whether the payment is the cardholder's agreement to later off-session payments with
    its card (Stripe's `setup_future_usage=off_session`), which the network is told; not when
    the payment is off-session itself: an absent cardholder agrees to nothing."""
    return intent.setup_future_usage == "off_session" and not off_session


def _confirmed_setup(intent: PaymentIntent, confirm: ConfirmParams) -> bool:
    """`_sets_up_off_session` for the intent as `confirm` leaves it: a confirmation may set or
    clear its setup_future_usage."""
    usage = intent.setup_future_usage
    if confirm.clear_setup_future_usage:
        usage = None
    elif confirm.setup_future_usage is not None:
        usage = confirm.setup_future_usage
    return _sets_up_off_session(replace(intent, setup_future_usage=usage), confirm.off_session)


def _card_or_refusal(named: ChargeableCard | RemitError | None) -> ChargeableCard | None:
    """The card `_resolve_named_card` found (or a `NewCard`), or its refusal raised."""
    if isinstance(named, RemitError):
        raise named
    return named


def _refuse_two_methods(payment_method_id: str | None, new_card: NewCard | None) -> None:
    """A request names the payment method to pay with, or gives the card to make one of
    (`payment_method_data`), not both."""
    if payment_method_id is not None and new_card is not None:
        raise invalid(
            "Received both payment_method and payment_method_data. Please pass in only one.",
            "payment_method_data",
            code="parameters_exclusive",
        )


def _embeds_its_intent(
    method: Callable[Concatenate["PaymentsService", P], Awaitable[T]],
) -> Callable[Concatenate["PaymentsService", P], Awaitable[T]]:
    """A call on a PaymentIntent whose refusals carry the intent they are about, as the client
    sees it: Stripe's error object embeds the PaymentIntent of the request."""

    async def embedding(service: "PaymentsService", /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(service, *args, **kwargs)
        except RemitError as error:
            service._presented(error)
            raise

    return embedding


class PaymentsService:
    def __init__(
        self,
        engine: AsyncEngine,
        network: CardNetwork,
        methods: PaymentMethodSource,
        *,
        present: Callable[[PaymentIntent], object],
        hooks: PaymentHooks | None = None,
        clock: Clock | None = None,
        radar: RadarGate | None = None,
        embedded_bytes: int = EMBEDDED_ANSWER_BYTES,
    ) -> None:
        # `present` turns an intent into the message a card error embeds (Stripe returns the
        # declined PaymentIntent inside the error).
        self._present = present
        self._engine = engine
        self._network = network
        self._methods = methods
        # A chain always, so a change of a charge and its intent reaches each set in turn.
        self._hooks = (
            hooks if isinstance(hooks, HookChain) else HookChain([] if hooks is None else [hooks])
        )
        self._clock = clock or SystemClock()
        self._radar: RadarGate = radar or NoRadar()
        # What the lists embedded in one answer may take (remit.payments.embedded_budget).
        self._embedded_bytes = embedded_bytes
        # Network steps whose caller was cancelled, still running (`_outliving_its_caller`).
        self._outliving: set[asyncio.Task[Any]] = set()

    def _now(self) -> datetime:
        return self._clock.now()

    def disputes(self) -> DisputesService:
        """The disputes of this service's database, on its clock."""
        return DisputesService(self._engine, self._clock)

    @staticmethod
    async def _intent_of(db: AsyncConnection, charge: Charge) -> PaymentIntent:
        """The intent a charge belongs to, for the hooks (every charge has one)."""
        intent = await PaymentIntentRepository(db).get(charge.account_id, charge.payment_intent_id)
        assert intent is not None, charge.payment_intent_id
        return intent

    # --- Idempotency plumbing -------------------------------------------------------------

    def _key_fields(self, call: KeyedCall) -> dict[str, Any]:
        return call.claim_fields(self._now())

    async def _claim(self, call: KeyedCall) -> KeyRecord:
        note_request(call.request_id, call.key)
        # Nearly every key is new: one autocommitted INSERT claims it. A key that exists
        # (replay, resume, conflict) is decided under its row lock in a transaction.
        async with single_statement(self._engine) as db:
            fresh = await idempotency.claim_new(db, **self._key_fields(call))
        if fresh is not None:
            return fresh
        async with self._engine.begin() as db:
            return await idempotency.begin(db, **self._key_fields(call))

    async def _store_if_refused(self, call: KeyedCall, error: RemitError) -> Replay:
        """For a change made in one transaction that `error` rolled back: a refusal by the state
        of things (`is_stored_refusal`) is stored under the call's key and raised (or, if a
        twin request finished the key meanwhile, its answer replayed), as `_guard_validation`
        stores one; any other error is raised and leaves the key free."""
        if not is_stored_refusal(error):
            raise error
        return await store_refusal(self._engine, call, self._now(), self._presented(error))

    async def _forget(self, record: KeyRecord) -> None:
        async with self._engine.begin() as db:
            await idempotency.forget(db, record)

    async def _release(self, record: KeyRecord) -> None:
        async with self._engine.begin() as db:
            await idempotency.release(db, record)

    def _kept_held(self, record: KeyRecord) -> contextlib.AbstractAsyncContextManager[None]:
        """Around a step at the network: its key's lease is renewed while it runs, so that a
        step longer than a lease is not taken over from a request still waiting on it."""
        return key_kept_held(self._engine, record, now=self._now)

    _replay_of = staticmethod(replay_of)

    def _presented(self, error: RemitError) -> RemitError:
        """`error`, the domain intent it is about (`unexpected_state`'s) turned into the message
        the client sees."""
        if isinstance(error.related, PaymentIntent):
            error.related = self._present(error.related)
        return error

    async def _finish_with_error(
        self, db: AsyncConnection, record: KeyRecord, error: RemitError
    ) -> None:
        replay = stored_error(self._presented(error))
        await idempotency.finish(
            db, record, response_code=replay.code, response_body=replay.body, now=self._now()
        )

    # --- Create, update, read --------------------------------------------------------------

    @_embeds_its_intent
    async def create_payment_intent(
        self,
        call: KeyedCall,
        new: NewPaymentIntent,
        respond: Callable[[PaymentIntent], bytes],
        confirm: ConfirmParams | None = None,
        *,
        new_card: NewCard | None = None,
    ) -> Done[PaymentIntent] | Replay:
        """A new intent, confirmed at once given `confirm`; `new_card` is the card of the
        payment method the request makes (Stripe's `payment_method_data`)."""
        validate_new_intent(new)
        _refuse_two_methods(new.payment_method_id, new_card)
        if confirm is None:
            return await self._create_only(call, new, respond, new_card)
        validate_confirm(confirm)
        record = await self._claim(call)
        if record.finished:
            return self._replay_of(record)
        crash_after(RecoveryPoint.STARTED.value)
        ask: NetworkAsk | None = None
        if record.recovery_point is RecoveryPoint.STARTED:
            started = await self._guard_validation(
                record,
                self._start_attempt(record, respond, new=new, confirm=confirm, new_card=new_card),
            )
            if isinstance(started, Replay):
                return started
            record, ask = started
            if record.finished:
                return self._replay_of(record)
        return await self.resume_attempt(record, respond, ask)

    async def _create_only(
        self,
        call: KeyedCall,
        new: NewPaymentIntent,
        respond: Callable[[PaymentIntent], bytes],
        new_card: NewCard | None = None,
    ) -> Done[PaymentIntent] | Replay:
        named = new_card
        if named is None:
            named = await self._resolve_named_card(call.account_id, new.payment_method_id)
        note_request(call.request_id, call.key)
        try:
            async with batched_unit(self._engine) as db:
                record = await idempotency.begin(db, **self._key_fields(call))
                if record.finished:
                    return self._replay_of(record)
                card = _card_or_refusal(named)
                await _require_live_customer(db, call.account_id, new.customer_id)
                if card is not None:
                    # A test id (pm_card_visa), or a card given to make a payment method of, is
                    # stored as the payment method made of its card.
                    new = replace(new, payment_method_id=card.payment_method_id)
                intent = self._new_intent(call.account_id, new)
                if card is not None:
                    _refuse_another_customers_card(intent, card)
                    _refuse_a_spent_card(intent.id, card)
                    # With the intent's own writes, after everything that may refuse it; a
                    # saved card checked again there, under its row lock.
                    await save_card_in(db, card, named_with_its_card(intent))
                await PaymentIntentRepository(db).insert(intent)
                await self._hooks.intent_changed(db, None, intent)
                await idempotency.finish(
                    db, record, response_code=0, response_body=respond(intent), now=self._now()
                )
        except RemitError as error:
            return await self._store_if_refused(call, error)
        return Done(intent)

    async def _resolve_named_card(
        self, account_id: str, payment_method_id: str | None
    ) -> ChargeableCard | RemitError | None:
        """The card a create or an update names, resolved before its transaction opens: that
        may ask the vault, which no database transaction should wait on. A refusal is returned,
        not raised: the transaction raises it once it finds the key fresh, so a retry still
        replays its key's answer, and a key used with other parameters is still reported as
        such. None when the request names no payment method."""
        if payment_method_id is None:
            return None
        try:
            return await self._methods.chargeable_card(account_id, payment_method_id)
        except RemitError as refused:
            return refused

    def _new_intent(
        self, account_id: str, new: NewPaymentIntent, now: datetime | None = None
    ) -> PaymentIntent:
        """`now`: the instant of the request that also makes the intent's first charge, so that
        the two show the same `created`."""
        intent_id = new_id("pi")
        return create_intent(
            new,
            intent_id=intent_id,
            account_id=account_id,
            # The client secret lets a browser act on this one intent; it embeds the id so a
            # secret can never be used against another intent.
            client_secret=f"{intent_id}_secret_{random_token()}",
            now=now or self._now(),
        )

    @_embeds_its_intent
    async def update_payment_intent(
        self,
        call: KeyedCall,
        intent_id: str,
        update: Updated,
        respond: Callable[[PaymentIntent], bytes],
        *,
        metadata: tuple[dict[str, str], list[str], bool] = ({}, [], False),
    ) -> Done[PaymentIntent] | Replay:
        validate_update(update)
        named = await self._resolve_named_card(call.account_id, update.payment_method_id)
        note_request(call.request_id, call.key)
        try:
            async with batched_unit(self._engine) as db:
                record = await idempotency.begin(db, **self._key_fields(call))
                if record.finished:
                    return self._replay_of(record)
                intents = PaymentIntentRepository(db)
                before = await intents.get(call.account_id, intent_id, for_update=True)
                if before is None:
                    raise not_found("payment_intent", intent_id, param="intent")
                card = _card_or_refusal(named)
                customer_id = update.changes.get("customer_id")
                if isinstance(customer_id, str):
                    await _require_live_customer(db, call.account_id, customer_id)
                update = replace(update, at=self._now())
                if card is not None:
                    # A test id (pm_card_visa) is stored as the payment method made of its card.
                    update = replace(update, payment_method_id=card.payment_method_id)
                # After the money has moved, only the description and metadata may change.
                after = transition(before, update_event(before, update))
                if card is not None:
                    # Against the customer the update leaves the intent with.
                    _refuse_another_customers_card(after, card)
                    _refuse_a_spent_card(after.id, card)
                values, unset, clear = metadata
                after = replace(
                    after,
                    metadata=updated_metadata(
                        before.metadata, clear=clear, unset=unset, values=values
                    ),
                )
                if values:
                    await _refuse_passing_a_capture_in_flight(db, after)
                if card is not None:
                    await save_card_in(db, card, named_with_its_card(after))
                await finish_left_behind(
                    db,
                    self._hooks,
                    before,
                    after,
                    left_by=left_by_update(before, after),
                    now=update.at,
                )
                await intents.save(after)
                await self._hooks.intent_changed(db, before, after)
                await idempotency.finish(
                    db, record, response_code=0, response_body=respond(after), now=update.at
                )
        except RemitError as error:
            # Its transaction rolled back whole, the key's claim with it.
            return await self._store_if_refused(call, error)
        return Done(after)

    async def get_payment_intent(
        self, account_id: str, intent_id: str, client_secret: str | None = None
    ) -> PaymentIntent:
        async with self._engine.begin() as db:
            intent = await PaymentIntentRepository(db).get(account_id, intent_id)
        if intent is None or (
            client_secret is not None and not _same_secret(client_secret, intent.client_secret)
        ):
            raise not_found("payment_intent", intent_id, param="intent")
        return intent

    async def list_payment_intents(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
        created: CreatedBounds = ANY_TIME,
        customer_id: str | None = None,
    ) -> tuple[list[PaymentIntent], bool]:
        async with self._engine.begin() as db:
            repo = PaymentIntentRepository(db)
            after, before = await self._cursors(
                db, repo.table, account_id, "payment_intent", limit, starting_after, ending_before
            )
            return await repo.page(
                account_id,
                limit=limit,
                starting_after=after,
                ending_before=before,
                created=created,
                customer_id=customer_id,
            )

    @staticmethod
    async def _cursors(
        db: AsyncConnection,
        table: Table,
        account_id: str,
        kind: str,
        limit: int,
        starting_after: str | None,
        ending_before: str | None,
    ) -> tuple[Cursor | None, Cursor | None]:
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise invalid("limit must be between 1 and 100.", "limit")
        if starting_after is not None and ending_before is not None:
            raise invalid("starting_after and ending_before cannot be used together.")
        cursors: list[Cursor | None] = []
        for object_id, param in (
            (starting_after, "starting_after"),
            (ending_before, "ending_before"),
        ):
            if object_id is None:
                cursors.append(None)
                continue
            cursor = await cursor_for(db, table, account_id, object_id)
            if cursor is None:
                raise not_found(kind, object_id, param=param)
            cursors.append(cursor)
        return cursors[0], cursors[1]

    # --- Confirmation -----------------------------------------------------------------------

    @_embeds_its_intent
    async def confirm_payment_intent(
        self,
        call: KeyedCall,
        intent_id: str,
        confirm: ConfirmParams,
        respond: Callable[[PaymentIntent], bytes],
        *,
        new_card: NewCard | None = None,
    ) -> Done[PaymentIntent] | Replay:
        """Confirm a stored intent; `new_card` is the card of the payment method the request
        makes to pay with (Stripe's `payment_method_data`)."""
        validate_confirm(confirm)
        _refuse_two_methods(confirm.payment_method_id, new_card)
        record = await self._claim(call)
        if record.finished:
            return self._replay_of(record)
        crash_after(RecoveryPoint.STARTED.value)
        ask: NetworkAsk | None = None
        if record.recovery_point is RecoveryPoint.STARTED:
            started = await self._guard_validation(
                record,
                self._start_attempt(
                    record, respond, intent_id=intent_id, confirm=confirm, new_card=new_card
                ),
            )
            if isinstance(started, Replay):
                return started
            record, ask = started
            if record.finished:
                return self._replay_of(record)
        return await self.resume_attempt(record, respond, ask)

    async def _guard_validation(
        self, record: KeyRecord, step: Awaitable[T], *, stores_refusals: bool = True
    ) -> T | Replay:
        """Run the first local step. A refusal by the state of things (`is_stored_refusal`: the
        intent's status, an open review) is the request's answer, stored under its key as
        Stripe stores it once the endpoint's work has begun: a retry replays it instead of doing
        the work in a world changed since (a capture refused during a review must not capture
        when retried after the approval). Any other refusal (validation, an id naming nothing)
        means nothing happened: the key is dropped, for the client to fix and retry. A Replay: the
        key was finished meanwhile by a retry that took it over (`_finish_refused`).
        Without `stores_refusals`, every refusal drops the key (see `create_refund`)."""
        try:
            return await step
        except RemitError as error:
            if stores_refusals and is_stored_refusal(error):
                return await self._finish_refused(record, error)
            await self._forget(record)
            raise
        except BaseException:
            await self._release(record)
            raise

    async def _start_attempt(
        self,
        record: KeyRecord,
        respond: Callable[[PaymentIntent], bytes],
        *,
        confirm: ConfirmParams,
        intent_id: str | None = None,
        new: NewPaymentIntent | None = None,
        new_card: NewCard | None = None,
    ) -> tuple[KeyRecord, NetworkAsk | None]:
        """Phase `attempt_created`: the intent goes to `processing` with a pending charge.
        Returns the key as recorded and what to ask the network (None if the key turned out
        finished by another request: the caller replays it)."""
        now = self._now()
        # The card a request names (which may mean asking the vault) is resolved before the
        # transaction opens, so no transaction holds its locks while the vault answers. Only a
        # confirmation that names none needs the stored intent's first, inside. A test id's new
        # payment method is written in the transaction, as is the one made of a card the
        # request gives (resolved before the key was claimed).
        card = _card_or_refusal(new_card)
        known_method = confirm.payment_method_id or (None if new is None else new.payment_method_id)
        if card is None and known_method is not None:
            card = await self._methods.chargeable_card(record.account_id, known_method)
        try:
            async with batched_unit(self._engine) as db:
                # Confirming a stored intent locks the key before reading the intent, the
                # order every phase takes its locks in. Created and confirmed at once, nothing
                # stored is read: the owner-fenced `advance` at the end stands in for that lock
                # (one statement fewer), and a request that lost its key rolls back there.
                if new is None:
                    stored = await idempotency.relock(db, record)
                    if stored.finished:
                        return stored, None
                intents = PaymentIntentRepository(db)
                if new is not None:
                    # Created and confirmed at once: the row is written once, already processing.
                    before = None
                    intent = self._new_intent(record.account_id, new, now)
                    await _require_live_customer(db, record.account_id, new.customer_id)
                else:
                    assert intent_id is not None
                    before = await intents.get(record.account_id, intent_id, for_update=True)
                    if before is None:
                        raise not_found("payment_intent", intent_id, param="intent")
                    intent = before
                # Before the card is looked up: a confirmation that could never redirect the
                # customer back is refused whatever it pays with, once the intent's status is
                # known to allow a confirmation at all (that refusal says more).
                if intent.status not in ALLOWED_FROM[ConfirmationStarted]:
                    raise unexpected_state(intent, "confirm")
                if confirm.names_payment_method_types:
                    intent = replace(intent, automatic_payment_methods=None)
                require_return_url(
                    intent, return_url=confirm.return_url, off_session=confirm.off_session
                )
                refuse_error_on_requires_action(
                    intent, error_on_requires_action=confirm.error_on_requires_action
                )
                if card is None:
                    card = await self._card_to_confirm_with(
                        record.account_id,
                        confirm.payment_method_id or intent.payment_method_id,
                        before,
                    )
                _refuse_another_customers_card(intent, card)
                _refuse_a_spent_card(intent.id, card)
                charges = ChargeRepository(db)
                # A manually confirmed intent that passed 3-D Secure continues its attempt.
                resumed = await self._authenticated_attempt(
                    charges, intent, card, setup_off_session=_confirmed_setup(intent, confirm)
                )
                charge_id = new_id("ch") if resumed is None else resumed.id
                # The confirmation's own values apply first: the charge copies the result.
                processing = transition(
                    intent,
                    ConfirmationStarted(
                        at=now,
                        payment_method_id=card.payment_method_id,
                        charge_id=charge_id,
                        capture_method=confirm.capture_method,
                        return_url=confirm.return_url,
                        setup_future_usage=confirm.setup_future_usage,
                        clear_setup_future_usage=confirm.clear_setup_future_usage,
                        receipt_email=confirm.receipt_email,
                        shipping=confirm.shipping,
                        clear_receipt_email=confirm.clear_receipt_email,
                        clear_shipping=confirm.clear_shipping,
                        allowed_payment_method_types=confirm.allowed_payment_method_types,
                        excluded_payment_method_types=confirm.excluded_payment_method_types,
                        request_three_d_secure=confirm.request_three_d_secure,
                    ),
                )
                require_a_usable_payment_method_type(processing)
                charge = resumed or Charge(
                    id=charge_id,
                    account_id=record.account_id,
                    payment_intent_id=processing.id,
                    amount_minor=processing.amount_minor,
                    currency=processing.currency,
                    status=ChargeStatus.PENDING,
                    payment_method_id=card.payment_method_id,
                    card=card.card,
                    created_at=now,
                    updated_at=now,
                    customer_id=processing.customer_id or card.customer_id,
                    description=processing.description,
                    metadata=dict(processing.metadata),
                    # Copied as they are now; the charge keeps them whatever changes later.
                    billing_details=dict(card.billing_details),
                    receipt_email=processing.receipt_email,
                    statement_descriptor=processing.statement_descriptor,
                    statement_descriptor_suffix=processing.statement_descriptor_suffix,
                    shipping=None if processing.shipping is None else dict(processing.shipping),
                    authentication=Authentication(
                        off_session=confirm.off_session,
                        error_on_requires_action=confirm.error_on_requires_action,
                        # The confirmation's own, else the one the intent was given.
                        requested=processing.request_three_d_secure,
                        use_stripe_sdk=confirm.use_stripe_sdk,
                        setup_off_session=_sets_up_off_session(processing, confirm.off_session),
                        initial_network_transaction_id=card.off_session_setup_transaction_id
                        if confirm.off_session
                        else None,
                    ).as_json(),
                )
                if resumed is None:
                    # Radar decides before the network is asked, and its decision is stored with
                    # the attempt, so a resumed attempt acts on the same one.
                    verdict = await self._radar.assess(
                        db, attempt_facts(processing, charge, card, now)
                    )
                    charge = replace(charge, risk=verdict.as_json())
                elif confirm.changes_receipt_or_shipping:
                    # The attempt goes on with the receipt email or shipping this confirmation
                    # names or clears (a write only when it names one).
                    charge = replace(
                        resumed,
                        receipt_email=processing.receipt_email,
                        shipping=None if processing.shipping is None else dict(processing.shipping),
                        updated_at=now,
                    )
                    await charges.save(charge, snapshot=True)
                # With the attempt's other writes, after everything that may refuse it. A
                # payment method attached to no customer is spent on this intent (a new one is
                # written so, with no statement of its own; a saved one is updated), unless
                # the payment is to save it for its customer (`_spends_its_card`). A saved one
                # is checked again under its row lock, in a statement that travels with the
                # attempt's other writes: the checks above saw the copy read before this
                # transaction, and a detach, an attach or a spend may have come since.
                await save_card_in(db, card, paying_with_its_card(processing))
                if new is not None:
                    await intents.insert(processing)
                if resumed is None:
                    await charges.insert(charge)
                if new is None:
                    await intents.save(processing)
                if before is not None and resumed is None:
                    await finish_left_behind(
                        db, self._hooks, before, processing, left_by=LeftBy.CONFIRMED_AGAIN, now=now
                    )
                await self._hooks.intent_changed(db, before, processing)
                if resumed is None:
                    await self._hooks.charge_changed(db, None, charge, processing)
                record = await idempotency.advance(
                    db,
                    record,
                    RecoveryPoint.ATTEMPT_CREATED,
                    now=now,
                    payment_intent_id=processing.id,
                    charge_id=charge.id,
                )
        except RemitError as error:
            if error.code != "idempotency_key_in_use":
                raise
            # This request's lease ran out before its attempt began (a stall longer than the
            # lease) and a retry took the key over. If the retry finished it, that answer
            # stands: starting an attempt here would authorize the payment a second time.
            async with self._engine.begin() as db:
                stored = await idempotency.relock(db, record)  # 409 again unless finished
            if not stored.finished:
                raise
            return stored, None
        crash_after(RecoveryPoint.ATTEMPT_CREATED.value)
        return record, NetworkAsk(
            charge=charge,
            intent_id=processing.id,
            capture=processing.capture_method is not CaptureMethod.MANUAL,
            vault_token=card.vault_token,
        )

    async def _card_to_confirm_with(
        self, account_id: str, payment_method_id: str | None, stored: PaymentIntent | None
    ) -> ChargeableCard:
        """The card of the payment method a confirmation names, or else the intent's. Without
        either the refusal carries the intent, as every refusal by an intent's state does,
        when it is `stored` (one being created is not: nothing of it will exist)."""
        if payment_method_id is None:
            missing = invalid(
                "You cannot confirm this PaymentIntent because it's missing a payment "
                "method. To confirm the PaymentIntent with a payment method, pass "
                "`payment_method`.",
                "payment_method",
                code="payment_intent_unexpected_state",
            )
            missing.related = stored
            raise missing
        return await self._methods.chargeable_card(account_id, payment_method_id)

    @staticmethod
    async def _authenticated_attempt(
        charges: ChargeRepository,
        intent: PaymentIntent,
        card: ChargeableCard,
        *,
        setup_off_session: bool,
    ) -> Charge | None:
        """The attempt a manual confirmation goes on with: the one its cardholder authenticated,
        for this card, amount, currency and customer, and for what it tells the network of
        setting the card up for off-session payments (`setup_off_session`, as the confirmation
        leaves the intent). Otherwise None: the confirmation makes a new attempt, authenticated
        again."""
        if intent.status is not Status.REQUIRES_CONFIRMATION or intent.latest_charge_id is None:
            return None
        previous = await charges.get(intent.account_id, intent.latest_charge_id, for_update=True)
        if (
            previous is None
            or previous.status is not ChargeStatus.PENDING
            or not authenticated_for(previous, intent, payment_method_id=card.payment_method_id)
            or Authentication.from_json(previous.authentication).setup_off_session
            != setup_off_session
        ):
            return None
        return previous

    async def resume_attempt(
        self,
        record: KeyRecord,
        respond: Callable[[PaymentIntent], bytes],
        ask: NetworkAsk | None = None,
        *,
        sent_before: bool | None = None,
    ) -> Done[PaymentIntent] | Replay:
        """From `attempt_created` or `authorization_done` to `finished`.

        `sent_before`: whether the authorization may have been sent already, so that the
        network is asked what became of it before anything is sent. By default, unless the
        request carries on from its own `_start_attempt` (`ask`): a retry, the completer."""
        try:
            if record.recovery_point is RecoveryPoint.ATTEMPT_CREATED:
                looked_up_first = ask is None if sent_before is None else sent_before
                ask = ask or await self._load_ask(record)
                record = await self._outliving_its_caller(
                    self._ask_network(record, ask, sent_before=looked_up_first),
                    left_alone=self._releasing(record),
                )
            return await self._apply_authorization(record, respond)
        except StepLeftAlone:
            raise
        except BaseException:
            # Whatever went wrong, the key keeps its recovery point; a retry resumes there.
            await self._release(record)
            raise

    def _releasing(self, record: KeyRecord) -> Callable[[object], Awaitable[None]]:
        """What a request left by its network step does once the step ends, whatever its
        end: let its key go, at whatever recovery point the step reached."""

        async def release(_: object) -> None:
            await self._release(record)

        return release

    async def _outliving_its_caller(
        self, step: Coroutine[Any, Any, T], *, left_alone: Callable[[T | None], Awaitable[object]]
    ) -> T:
        """Run `step` (send to the network and record its answer) to its end even when its
        caller is cancelled meanwhile (a server stopping past its grace, a caller's deadline,
        a worker stopping). Cut off there, the operation (an authorization, a capture, a
        release, a refund) may be done at the network with nothing recorded, and a retry would
        have to look it up, the payment left in between until then; run to its end, its answer
        is recorded and a retry carries on from it. The step is bounded by the network's own
        timeouts.

        A cancelled caller leaves the step to run alone (`StepLeftAlone`), and `left_alone`
        to do, once the step ends, what the caller would have done after it: it is given the
        step's result, None if the step failed. `drain` waits for such steps."""
        handed_over = False

        async def step_then_what_its_caller_would_do() -> T:
            try:
                result = await step
            except BaseException:
                if handed_over:
                    await left_alone(None)
                raise
            if handed_over:
                await left_alone(result)
            return result

        task = asyncio.ensure_future(step_then_what_its_caller_would_do())
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                # Ended as the caller was cancelled: the caller does what follows itself.
                if not task.cancelled():
                    task.exception()  # retrieved, so that asyncio does not log it as lost
                raise
            handed_over = True
            self._outliving.add(task)
            task.add_done_callback(self._outcome_of_outliving_step)
            raise StepLeftAlone(task) from None

    def _outcome_of_outliving_step(self, task: "asyncio.Task[Any]") -> None:
        self._outliving.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None and not isinstance(error, RemitError):
            log.error("a network step outliving its caller failed", exc_info=error)

    def follow_step_left_alone(
        self, left: StepLeftAlone, follow_up: Callable[[], Awaitable[object]]
    ) -> None:
        """Run `follow_up` once the step `left` names has ended, whatever its end: what the
        cancelled caller's own caller would have done after it (a review's close closing the
        review). `drain` waits for it as for the step."""

        async def after_the_step() -> object:
            await asyncio.wait([left.step])
            return await follow_up()

        task = asyncio.ensure_future(after_the_step())
        self._outliving.add(task)
        task.add_done_callback(self._outcome_of_outliving_step)

    async def drain(self, timeout_s: float) -> None:
        """Wait, at most `timeout_s`, for the network steps still running for callers
        cancelled meanwhile (`_outliving_its_caller`): a process stopping waits for them before
        closing the channels and the engine they use."""
        if self._outliving:
            await asyncio.wait(set(self._outliving), timeout=timeout_s)

    async def _load_ask(self, record: KeyRecord) -> NetworkAsk:
        """The network request of an attempt this process did not start (a retry, the
        completer, a resumed 3-D Secure attempt): everything comes from the stored rows. The
        card is not read here (see `NetworkAsk.vault_token`)."""
        assert record.charge_id is not None
        assert record.payment_intent_id is not None
        async with self._engine.begin() as db:
            charge = await ChargeRepository(db).get(record.account_id, record.charge_id)
            intent = await PaymentIntentRepository(db).get(
                record.account_id, record.payment_intent_id
            )
            assert charge is not None
            assert intent is not None
        return NetworkAsk(
            charge=charge,
            intent_id=intent.id,
            capture=intent.capture_method is not CaptureMethod.MANUAL,
            vault_token=None,
        )

    async def _ask_network(
        self, record: KeyRecord, ask: NetworkAsk, *, sent_before: bool = False
    ) -> KeyRecord:
        charge, capture = ask.charge, ask.capture
        authentication = Authentication.from_json(charge.authentication)
        reference = network_reference(charge.id, authentication)
        vault_token = ask.vault_token

        async def authorize() -> AuthorizationOutcome:
            nonlocal vault_token
            if vault_token is None:
                # The card the attempt chose when it began, whether or not its payment method
                # could pay again now (detached since): the attempt was decided then.
                vault_token = await self._methods.attempt_vault_token(
                    record.account_id, charge.payment_method_id
                )
            return await self._network.authorize(
                account_id=record.account_id,
                vault_token=vault_token,
                amount_minor=charge.amount_minor,
                currency=charge.currency,
                reference=reference,
                capture=capture,
                purpose=f"payment_intent.confirm {ask.intent_id}",
                three_d_secure_authenticated=authentication.authenticated,
                stored_credential=StoredCredential(
                    off_session=authentication.off_session,
                    setup_off_session=authentication.setup_off_session,
                    initial_network_transaction_id=authentication.initial_network_transaction_id,
                ),
            )

        def look_up() -> Awaitable[AuthorizationOutcome | None]:
            # Only on a resume or an unknown outcome: what the attempt sent, or would send.
            expected = expected_authorization(charge, capture=capture)
            return self._network.lookup_authorization(reference, expected)

        # A block, or a challenge that must come first, is recorded without asking the network.
        answer = stand_in_result(RiskVerdict.from_json(charge.risk), authentication)
        if answer is None:
            async with self._kept_held(record):
                answer = await self._authorize_or_refusal(
                    authorize,
                    look_up,
                    reference,
                    refused=lambda: self._methods.card_refused(
                        record.account_id, vault_token or ""
                    ),
                    sent_before=sent_before,
                )
            crash_after(AUTHORIZATION_ANSWERED)
            answer = answered_at(answer, self._now())
        now = self._now()
        async with single_statement(self._engine) as connection:
            advanced = await store_answer_and_advance(
                connection, record, charge_id=charge.id, answer=answer, now=now
            )
        if advanced is not None:
            crash_after(RecoveryPoint.AUTHORIZATION_DONE.value)
            return advanced
        async with self._engine.begin() as db:
            # Another request (a retry after this one's lease ran out, or the completer) may
            # have got here first: then its answer stands and nothing is written again.
            stored = await idempotency.relock(db, record)
            if stored.recovery_point is not RecoveryPoint.ATTEMPT_CREATED:
                return stored
            await ChargeRepository(db).store_network_result(
                record.account_id, charge.id, answer, now=now
            )
            record = await idempotency.advance(
                db, record, RecoveryPoint.AUTHORIZATION_DONE, now=now
            )
        crash_after(RecoveryPoint.AUTHORIZATION_DONE.value)
        return record

    async def _authorize_or_refusal(
        self,
        authorize: Callable[[], Awaitable[AuthorizationOutcome]],
        look_up: Callable[[], Awaitable[AuthorizationOutcome | None]],
        reference: str,
        *,
        refused: Callable[[], None],
        sent_before: bool = False,
    ) -> dict[str, object]:
        """The network's answer for the attempt, or a failed attempt's answer when the vault
        cannot open its card (deleted at the vault, or sealed under a key no longer allowed).

        Such a refusal would come back on every retry, so it must end the attempt rather than
        leave it waiting at `attempt_created` for ever. The network is still asked about the
        reference first: a forward that reached it before the card was deleted stands. One
        look-up finding nothing is conclusive because the vault refuses only once no forward
        of the reference it sent can still commit at the acquirer: while one may (its answer
        lost, the acquirer's statement still running), it answers that the outcome is unknown
        instead (`remit.grpcutil.forward_in_flight`), and the attempt waits at
        `attempt_created` to be looked up again, as after any other unknown outcome.
        `refused` is told of the vault's refusal (whatever the network says), so that nothing
        resolves a payment method to that card again: first, since the refusal is about the
        card's token and the look-up cannot change it, and a look-up that raises (a record
        refused as a mismatch, a network out of reach) must not leave the card remembered.

        A vault lacking the key version to open the card (`vault_lacks_card_key`) ends nothing:
        nothing was sent, and the key version can come back (a vault process whose key file
        lags a rotation), so the attempt waits at `attempt_created` and its client is told to
        retry (`card_key_unavailable`), whose code the completer records of the attempt, so
        that `remit held-requests` shows an operator why it waits: it waits until the key
        version is back, as nothing here can tell a key that will never come back. An operator
        who knows it never will declares it lost at the vault (`remit vault
        declare-key-version-lost`), which from then on refuses the card as under a retired
        version: the next try ends the attempt as above, with what the network holds.

        A reference the network holds for other parameters (`reference_conflict`) ends nothing:
        an authorization may be held under it, which only the network's record of it tells.
        Nor does a record under it of another operation than the attempt's: `look_up` refuses
        it (`lookup_expectations`), and the attempt waits at `attempt_created`.
        """
        try:
            settled = await self._settle(authorize, look_up, reference, sent_before=sent_before)
            return settled.as_json()
        except RemitError as refusal:
            if vault_lacks_card_key(refusal):
                log.error("the vault could not open the card of %s: %s", reference, refusal.message)
                raise card_key_unavailable() from None
            if not vault_will_not_open_card(refusal):
                raise
            log.warning("the vault refused to forward %s: %s", reference, refusal.kind.name)
        refused()
        try:
            found = await look_up()
        except OutcomeUnknownError:
            raise network_unavailable() from None
        return found.as_json() if found is not None else unusable_card_answer()

    async def _settle(
        self,
        send: Callable[[], Awaitable[T]],
        look_up: Callable[[], Awaitable[T | None]],
        reference: str,
        *,
        sent_before: bool = False,
    ) -> T:
        """Send an operation; when its outcome is unknown, find out by reference.

        A reference the network holds for an operation with other parameters
        (`reference_conflict`) is remit's own error, whatever the operation: the core derives a
        reference and its parameters from the same stored request. It ends nothing, since the
        network may hold an operation under the reference, which only its record tells: the
        request waits at its recovery point, and its next try looks the reference up first.

        If the network has no record of the reference, the operation never reached it and
        sending it (with the same reference) cannot duplicate it. `sent_before`: it may have
        been sent already (a retry or the completer resuming a request that stopped after
        recording it), and its outcome is unknown from the start: it is looked up before
        anything is sent. A first send is not looked up first, which would cost every
        payment a round trip to the network.
        """
        try:
            if not sent_before:
                try:
                    return await send()
                except OutcomeUnknownError as unknown:
                    log.warning("network outcome unknown (%s); looking the operation up", unknown)
            for attempt in range(SETTLE_ATTEMPTS):
                if not has_time_for(LOOKUP_NEEDS_S):
                    # The caller's deadline is near: the request waits at its recovery point
                    # for a retry or the completer, which look the reference up first.
                    log.warning("no time left to settle %s; it waits for a retry", reference)
                    break
                try:
                    found = await look_up()
                    if found is not None:
                        return found
                    return await send()
                except OutcomeUnknownError:
                    await asyncio.sleep(SETTLE_PAUSE_S * (attempt + 1))
        except RemitError as refusal:
            if not network_holds_reference_for_other_parameters(refusal):
                raise
            log.error(
                "the network holds %s for an operation with other parameters than this "
                "request's: %s",
                reference,
                refusal.message,
            )
            raise reference_conflict() from None
        raise network_unavailable()

    async def _apply_authorization(
        self, record: KeyRecord, respond: Callable[[PaymentIntent], bytes]
    ) -> Done[PaymentIntent] | Replay:
        """Phase `finished`: the network's stored answer becomes the intent's new state."""
        assert record.charge_id is not None
        assert record.payment_intent_id is not None
        now = self._now()
        declined: RemitError | None = None
        async with batched_unit(self._engine) as db:
            stored, intent, charge = await lock_attempt(db, record)
            if stored.finished:
                return self._replay_of(stored)
            intents, charges = PaymentIntentRepository(db), ChargeRepository(db)
            assert intent is not None
            assert charge is not None
            assert charge.network_result
            result = charge.network_result
            verdict = RiskVerdict.from_json(charge.risk)
            authentication = Authentication.from_json(charge.authentication)
            outcome = outcome_json(verdict, result)
            wants_authentication = needs_authentication(verdict, authentication, result)
            challenge = None
            if wants_authentication and authentication.may_challenge:
                challenge = await self._radar.open_challenge(db, charge, intent)
            if challenge is not None:
                # The attempt waits for the cardholder; the network is asked again after.
                settled = replace(
                    charge,
                    network_result=None,
                    authentication=replace(authentication, challenge_id=challenge.id).as_json(),
                    updated_at=now,
                )
                after = transition(
                    intent,
                    ActionRequired(
                        at=now,
                        next_action=authentication_action(
                            challenge, intent, use_stripe_sdk=authentication.use_stripe_sdk
                        ),
                    ),
                )
            elif result.get("approved"):
                captured = bool(result.get("captured"))
                # When the network made it, not when it is recorded here: an answer found by a
                # look-up days later starts the 7 days (capture, expiry, the ledger's
                # reservation) as the network counts them.
                authorized_at = network_authorized_at(result, now)
                settled = replace(
                    charge,
                    status=ChargeStatus.SUCCEEDED,
                    captured=captured,
                    amount_captured_minor=charge.amount_minor if captured else 0,
                    authorization_id=_text(result.get("authorization_id")),
                    authorized_at=authorized_at,
                    outcome=outcome,
                    updated_at=now,
                    balance_transaction_id=new_id("txn") if captured else None,
                )
                after = transition(
                    intent,
                    Authorized(at=now, captured_minor=charge.amount_minor if captured else 0),
                )
                if after.status is Status.REQUIRES_CAPTURE:
                    await stage_job(
                        db,
                        EXPIRE_JOB,
                        {"account_id": after.account_id, "payment_intent_id": after.id},
                        now=now,
                        run_at=authorization_expires_at(settled),
                        account_id=after.account_id,
                        dedupe_key=f"{EXPIRE_JOB}:{charge.id}",
                    )
                if verdict.action == REVIEW:
                    review_id = await self._radar.open_review(db, settled, after, verdict)
                    settled = replace(settled, review_id=review_id)
                    after = replace(after, review_id=review_id)
            else:
                code, decline_code, message = _decline_of(result, wants_authentication)
                settled = replace(
                    charge,
                    status=ChargeStatus.FAILED,
                    failure_code=code,
                    failure_message=message,
                    decline_code=decline_code,
                    authorization_id=_text(result.get("authorization_id")),
                    outcome=outcome,
                    updated_at=now,
                )
                error_json: dict[str, object] = {
                    "type": "card_error",
                    "code": code,
                    "decline_code": decline_code,
                    "message": message,
                    "charge": charge.id,
                    "payment_method": charge.payment_method_id,
                }
                after = transition(intent, Declined(at=now, error=error_json))
                declined = card_error(
                    code,
                    decline_code,
                    message,
                    charge_id=charge.id,
                    intent=self._present(after),
                    payment_method_id=charge.payment_method_id,
                )
            await charges.save(settled)
            await intents.save(after)
            if settled.status is not ChargeStatus.PENDING:
                await self._radar.attempt_settled(db, settled)
            if declined is None:
                await idempotency.finish(
                    db, record, response_code=0, response_body=respond(after), now=now
                )
            else:
                await self._finish_with_error(db, record, declined)
            # Last: the ledger's posting holds the account's chain lock until the commit. The
            # network has authorized (and perhaps captured) already: a refusal to book it is
            # remit's own failure, which a retry resumes from `authorization_done`.
            await recorded_after_the_network(
                self._hooks.charge_and_intent_changed(db, (charge, settled), (intent, after)),
                what=f"the authorization of {charge.id}",
            )
        crash_after(RecoveryPoint.FINISHED.value)
        if declined is not None:
            raise declined
        return Done(after)

    # --- Capture and cancel ----------------------------------------------------------------

    @_embeds_its_intent
    async def capture_payment_intent(
        self,
        call: KeyedCall,
        intent_id: str,
        amount_to_capture: int | None,
        respond: Callable[[PaymentIntent], bytes],
        params: CaptureParams = _NO_CAPTURE_PARAMS,
    ) -> Done[PaymentIntent] | Replay:
        """A capture under `call`'s key. An amount no intent could capture (below 1, checked
        with the intent, or past the most a payment may be) is refused as invalid and leaves
        the key free; one past what this intent holds capturable is a refusal by its state,
        stored under the key (`domain.transition`)."""
        if amount_to_capture is not None and amount_to_capture > MAX_AMOUNT_MINOR:
            raise invalid(
                f"The amount to capture must be no more than {MAX_AMOUNT_MINOR}.",
                "amount_to_capture",
                code="amount_too_large",
            )
        # Before the key is claimed, as a create's parameters are: the key stays free for the
        # corrected request.
        refuse_invalid_payment_descriptors(
            params.statement_descriptor, params.statement_descriptor_suffix
        )
        record = await self._claim(call)
        if record.finished:
            return self._replay_of(record)
        crash_after(RecoveryPoint.STARTED.value)
        just_requested = record.recovery_point is RecoveryPoint.STARTED
        if just_requested:
            requested = await self._guard_validation(
                record, self._start_capture(record, intent_id, amount_to_capture, params)
            )
            if isinstance(requested, Replay):
                return requested
            record = requested
            if record.finished:
                return self._replay_of(record)
        try:
            return await self.resume_capture(record, respond, sent_before=not just_requested)
        except StepLeftAlone:
            raise  # the step lets the key go once it ends
        except BaseException:
            await self._release(record)
            raise

    async def _start_capture(
        self,
        record: KeyRecord,
        intent_id: str,
        amount_to_capture: int | None,
        params: CaptureParams,
    ) -> KeyRecord:
        """Phase `attempt_created`: the capture is checked and requested on the charge. What
        the capture changes besides (metadata, descriptors) is checked and recorded with the
        request, not applied: it takes effect only with the network's approval
        (`resume_capture`), which the retry or the completer that finishes the capture finds
        recorded here."""
        now = self._now()
        async with batched_unit(self._engine) as db:
            stored = await idempotency.relock(db, record)
            if stored.finished:
                return stored  # finished by a retry that took the key over: replayed
            intents = PaymentIntentRepository(db)
            intent = await intents.get(record.account_id, intent_id, for_update=True)
            if intent is None:
                raise not_found("payment_intent", intent_id, param="intent")
            if intent.review_id is not None and await self._radar.review_is_open(
                db, intent.review_id
            ):
                raise RemitError(
                    message=f"This PaymentIntent is in review ({intent.review_id}); approve the "
                    "review before capturing it.",
                    kind=ErrorKind.FAILED_PRECONDITION,
                    code="payment_intent_unexpected_state",
                    related=intent,
                )
            amount = (
                intent.amount_capturable_minor if amount_to_capture is None else amount_to_capture
            )
            # Check legality and amount now, before the network is involved.
            transition(intent, Captured(at=now, amount_minor=amount))
            if amount_to_capture is not None and amount != intent.amount_capturable_minor:
                # A partial capture. The whole authorization is capturable as it stands, even
                # one made before its currency's granularity was enforced; and once the
                # network has approved a capture, its amount is recorded whatever it is.
                require_whole_charge_amount(amount, intent.currency, "amount_to_capture")
            charges = ChargeRepository(db)
            assert intent.latest_charge_id is not None
            charge = await charges.get(record.account_id, intent.latest_charge_id, for_update=True)
            assert charge is not None
            if charge.capture_requested:
                # Another request's capture is at the network (or waits for its retry or the
                # completer). Its recorded changes must not be replaced by this one's, and the
                # intent can be captured once: this request may try again when that one ends.
                raise RemitError(
                    message=f"A capture of this PaymentIntent ({intent.id}) is already in "
                    "progress under another request; retry after it has finished.",
                    kind=ErrorKind.CONFLICT,
                    code="payment_intent_unexpected_state",
                    related=intent,
                )
            # `now` is the core's clock, the database's (`remit.storage.database_clock`), told
            # without a statement: the expiry job holds the same time to the database's now().
            if now >= authorization_expires_at(charge):
                raise _authorization_expired(intent)
            params.check_metadata(intent.metadata)
            # The changes are recorded in the same update as the capture request, and so is
            # its place among the charge's captures, which gives it a reference of its own: the
            # network keeps a refused capture under its reference, and would refuse this one
            # (another amount, say) under the same.
            await charges.save(
                replace(
                    charge,
                    capture_requested=True,
                    requested_capture_minor=amount,
                    requested_capture_changes=params.as_json(),
                    capture_attempts=charge.captures_asked + 1,
                    updated_at=now,
                )
            )
            record = await idempotency.advance(
                db,
                record,
                RecoveryPoint.ATTEMPT_CREATED,
                now=now,
                payment_intent_id=intent.id,
                charge_id=charge.id,
            )
        crash_after(RecoveryPoint.ATTEMPT_CREATED.value)
        return record

    async def resume_capture(
        self,
        record: KeyRecord,
        respond: Callable[[PaymentIntent], bytes],
        *,
        sent_before: bool = True,
    ) -> Done[PaymentIntent] | Replay:
        """Capture at the network and apply its answer, to the end even if the caller is
        cancelled meanwhile (`_outliving_its_caller`). `sent_before`: the capture may have been
        sent already (see `_settle`); only the request that has just recorded it says not."""
        return await self._outliving_its_caller(
            self._capture_and_record(record, respond, sent_before=sent_before),
            left_alone=self._releasing(record),
        )

    async def _capture_and_record(
        self, record: KeyRecord, respond: Callable[[PaymentIntent], bytes], *, sent_before: bool
    ) -> Done[PaymentIntent] | Replay:
        assert record.charge_id is not None
        assert record.payment_intent_id is not None
        async with self._engine.begin() as db:
            charge = await ChargeRepository(db).get(record.account_id, record.charge_id)
        assert charge is not None
        assert charge.authorization_id is not None
        assert charge.requested_capture_minor is not None
        # The reference `_start_capture` gave this capture (no other capture of the charge can
        # start while `capture_requested` holds it).
        reference = charge.capture_reference
        authorization_id, amount = charge.authorization_id, charge.requested_capture_minor
        expires_at = authorization_expires_at(charge)

        async def send() -> OperationOutcome:
            # A capture resumed by a retry or the completer, its look-up having found nothing
            # at the network, may come days after `_start_capture` checked the authorization's
            # age: past its 7 days the network no longer holds the funds, and the capture is
            # not sent. (A capture the look-up found stands, whenever it is found.) The core's
            # clock is the database's, which the expiry job holds the same time to.
            if self._now() >= expires_at:
                raise _AuthorizationExpiredBeforeSendingError
            return await self._network.capture(
                authorization_id=authorization_id, amount_minor=amount, reference=reference
            )

        operation: OperationOutcome | None
        async with self._kept_held(record):
            try:
                operation = await self._settle(
                    send,
                    # A capture of the amount asked for (`amount_to_capture`), not of the whole
                    # charge.
                    lambda: self._network.lookup_operation(
                        reference, expected_capture(charge, authorization_id, amount)
                    ),
                    reference,
                    sent_before=sent_before,
                )
            except _AuthorizationExpiredBeforeSendingError:
                # Refused, not failed: stored under the key below, and said in the log too, as
                # a step left to a retry is: a payment the merchant can no longer collect, its
                # capture held past the authorization's 7 days (ids only, never the card).
                log.warning(
                    "capture %s of %s not sent under %s %s: its authorization expired at %s, "
                    "before the capture reached the network",
                    reference,
                    record.charge_id,
                    record.endpoint,
                    record.key,
                    expires_at.isoformat(),
                )
                operation = None
        crash_after(CAPTURE_ANSWERED)
        now = self._now()
        refused: RemitError | None = None
        async with batched_unit(self._engine) as db:
            stored = await idempotency.relock(db, record)
            if stored.finished:
                return self._replay_of(stored)
            intents, charges = PaymentIntentRepository(db), ChargeRepository(db)
            intent = await intents.get(record.account_id, record.payment_intent_id, for_update=True)
            current = await charges.get(record.account_id, record.charge_id, for_update=True)
            assert intent is not None
            assert current is not None
            # What the capture asked to change besides, as recorded with its request.
            changes = CaptureParams.from_json(current.requested_capture_changes)
            if operation is not None and operation.approved:
                # The changes apply with the capture, bound into the writes it makes anyway.
                after = changes.applied(transition(intent, Captured(at=now, amount_minor=amount)))
                captured = changes.described(
                    replace(
                        current,
                        captured=True,
                        amount_captured_minor=amount,
                        # The ledger books the fee the network withheld from this capture.
                        network_result=with_capture_fee(current.network_result, operation),
                        capture_requested=False,
                        requested_capture_changes=None,
                        updated_at=now,
                        balance_transaction_id=new_id("txn"),
                    )
                )
                await charges.save(captured, snapshot=changes.changes_descriptors)
                await intents.save(after)
                await idempotency.finish(
                    db, record, response_code=0, response_body=respond(after), now=now
                )
                # Last: the ledger's posting holds the account's chain lock until the commit.
                await recorded_after_the_network(
                    self._hooks.charge_and_intent_changed(db, (current, captured), (intent, after)),
                    what=f"the capture of {current.id}",
                )
            else:
                # The refusal is the outcome of this request: store it, commit, then raise.
                # Nothing it asked for applies; the charge is no longer being captured.
                # Not sent, the authorization expired: refused as `_start_capture` refuses it,
                # the intent left requires_capture for the expiry job to release and expire.
                refused = (
                    _authorization_expired(intent)
                    if operation is None
                    else _capture_refusal(intent, operation)
                )
                await charges.save(
                    replace(current, capture_requested=False, requested_capture_changes=None)
                )
                await self._finish_with_error(db, record, refused)
        if refused is not None:
            raise refused
        crash_after(RecoveryPoint.FINISHED.value)
        return Done(after)

    @_embeds_its_intent
    async def cancel_payment_intent(
        self,
        call: KeyedCall,
        intent_id: str,
        reason: CancellationReason | None,
        respond: Callable[[PaymentIntent], bytes],
    ) -> Done[PaymentIntent] | Replay:
        if reason is not None and reason not in USER_CANCELLATION_REASONS:
            raise invalid(
                "cancellation_reason must be one of abandoned, duplicate, fraudulent, "
                "requested_by_customer.",
                "cancellation_reason",
            )
        record = await self._claim(call)
        if record.finished:
            return self._replay_of(record)
        crash_after(RecoveryPoint.STARTED.value)
        just_decided = record.recovery_point is RecoveryPoint.STARTED
        if just_decided:
            decided = await self._guard_validation(record, self._start_cancel(record, intent_id))
            if isinstance(decided, Replay):
                return decided
            record = decided
            if record.finished:
                return self._replay_of(record)
        try:
            return await self.resume_cancel(record, reason, respond, look_again=not just_decided)
        except StepLeftAlone:
            raise  # the step lets the key go once it ends
        except BaseException:
            await self._release(record)
            raise

    async def _start_cancel(self, record: KeyRecord, intent_id: str) -> KeyRecord:
        now = self._now()
        async with batched_unit(self._engine) as db:
            stored = await idempotency.relock(db, record)
            if stored.finished:
                return stored  # finished by a retry that took the key over: replayed
            intent = await PaymentIntentRepository(db).get(
                record.account_id, intent_id, for_update=True
            )
            if intent is None:
                raise not_found("payment_intent", intent_id, param="intent")
            transition(intent, Canceled(at=now, reason=None))  # refuses an illegal cancel now
            needs_void = intent.status is Status.REQUIRES_CAPTURE
            record = await idempotency.advance(
                db,
                record,
                RecoveryPoint.ATTEMPT_CREATED,
                now=now,
                payment_intent_id=intent.id,
                charge_id=intent.latest_charge_id if needs_void else None,
            )
        crash_after(RecoveryPoint.ATTEMPT_CREATED.value)
        return record

    async def resume_cancel(
        self,
        record: KeyRecord,
        reason: CancellationReason | None,
        respond: Callable[[PaymentIntent], bytes],
        *,
        look_again: bool = True,
    ) -> Done[PaymentIntent] | Replay:
        """Release the authorization (when there is one), then cancel the intent, to the end
        even if the caller is cancelled meanwhile (`_outliving_its_caller`).

        `look_again`: the first phase's finding is not fresh (a retry, the completer), and a
        confirmation may have authorized the intent since: look for an authorization again. A
        race within one call is caught by the last phase's check either way."""
        return await self._outliving_its_caller(
            self._cancel_and_record(record, reason, respond, look_again=look_again),
            left_alone=self._releasing(record),
        )

    async def _cancel_and_record(
        self,
        record: KeyRecord,
        reason: CancellationReason | None,
        respond: Callable[[PaymentIntent], bytes],
        *,
        look_again: bool,
    ) -> Done[PaymentIntent] | Replay:
        assert record.payment_intent_id is not None
        held = record.charge_id
        if held is None and look_again:
            held = await self._authorized_charge(record.account_id, record.payment_intent_id)
        if held is not None:
            async with self._kept_held(record):
                released = await self._void(record.account_id, held, sent_before=look_again)
            if _captured_first(released):
                # A capture reached the network before this release: the money is taken, and
                # the capture's own outcome makes the intent succeeded. Canceling it would
                # leave captured funds on an intent and a ledger that say they were released.
                intent = await self.get_payment_intent(record.account_id, record.payment_intent_id)
                return await self._finish_refused(record, _already_captured(intent))
        now = self._now()
        refusal: RemitError | None = None
        async with batched_unit(self._engine) as db:
            stored = await idempotency.relock(db, record)
            if stored.finished:
                return self._replay_of(stored)
            intents = PaymentIntentRepository(db)
            current = await intents.get(
                record.account_id, record.payment_intent_id, for_update=True
            )
            assert current is not None
            if current.status is Status.REQUIRES_CAPTURE and current.latest_charge_id != held:
                # Authorized after the release was decided: canceling now would leave the
                # customer's funds held at the network. The key is released; a retry voids.
                raise RemitError(
                    message=f"This PaymentIntent ({current.id}) was authorized while it was "
                    "being canceled; retry the cancel.",
                    kind=ErrorKind.CONFLICT,
                    code="payment_intent_unexpected_state",
                    related=current,
                )
            try:
                after = transition(current, Canceled(at=now, reason=reason))
            except RemitError as refused:
                # The intent moved on since the first phase (the expiry job canceled it, or a
                # capture made it succeed): that is this cancel's outcome, stored, so that
                # neither its retries nor the completer try it again and again.
                await self._finish_with_error(db, record, refused)
                refusal = refused
            else:
                await intents.save(after)
                if held is not None:
                    await _mark_released(ChargeRepository(db), record.account_id, held, now)
                if after.review_id is not None:
                    await self._radar.payment_ended(
                        db, after.account_id, after.review_id, PaymentEnd.CANCELED, by=record
                    )
                await finish_left_behind(
                    db, self._hooks, current, after, left_by=LeftBy.CANCELED, now=now
                )
                await idempotency.finish(
                    db, record, response_code=0, response_body=respond(after), now=now
                )
                # Last: releasing an authorization posts to the ledger, whose lock lasts to
                # commit.
                await recorded_after_the_network(
                    self._hooks.intent_changed(db, current, after),
                    what=f"the cancel of {current.id}",
                )
        if refusal is not None:
            raise refusal
        crash_after(RecoveryPoint.FINISHED.value)
        return Done(after)

    async def _authorized_charge(self, account_id: str, intent_id: str) -> str | None:
        """The charge whose authorization an intent holds uncaptured, if it holds one."""
        async with self._engine.begin() as db:
            intent = await PaymentIntentRepository(db).get(account_id, intent_id)
        if intent is None or intent.status is not Status.REQUIRES_CAPTURE:
            return None
        return intent.latest_charge_id

    async def _finish_refused(self, record: KeyRecord, refused: RemitError) -> Replay:
        """End the request with `refused`, stored under its key (a retry replays it), and
        raise it. If the key was finished meanwhile (this request's lease ran out, and its
        client's retry took the key over and finished), the key's answer is the stored one:
        it is replayed instead, as any later retry would get it."""
        async with batched_unit(self._engine) as db:
            stored = await idempotency.relock(db, record)
            if not stored.finished:
                await self._finish_with_error(db, record, refused)
        if stored.finished:
            return self._replay_of(stored)
        raise refused

    async def _void(
        self, account_id: str, charge_id: str, *, sent_before: bool
    ) -> OperationOutcome:
        """Release the charge's authorization at the network; its answer says whether it did
        (see `_captured_first`). `sent_before`: the release may have been sent already (see
        `_settle`)."""
        async with self._engine.begin() as db:
            charge = await ChargeRepository(db).get(account_id, charge_id)
        assert charge is not None
        assert charge.authorization_id is not None
        reference, authorization_id = f"{charge.id}_void", charge.authorization_id
        released = await self._settle(
            lambda: self._network.void(authorization_id=authorization_id, reference=reference),
            lambda: self._network.lookup_operation(
                reference, expected_void(charge, authorization_id)
            ),
            reference,
            sent_before=sent_before,
        )
        crash_after(VOID_ANSWERED)
        return released

    async def expire_authorization(
        self, db: AsyncConnection, account_id: str, intent_id: str, *, sent_before: bool = False
    ) -> bool:
        """The worker's job: release an authorization left uncaptured for 7 days.

        Raises NotDueError, voiding nothing, when the 7 days have not passed by the database's
        clock (`remit.payments.authorization_age`): the job was claimed early, and runs again
        when they have.

        The void is asked for before the intent's row is locked: it can take as long as the
        network's timeouts and look-ups, and a capture or cancel of the intent meanwhile must
        not wait on the lock for it. The void is idempotent by its reference, so releasing an
        authorization that a cancel releases too is harmless; the intent moves on only if,
        locked, it still holds that authorization. `sent_before`: an earlier run of the job may
        have sent the release (see `_settle`).

        The release runs to its end even if the job is cancelled meanwhile (the worker
        stopping): the intent then expires in a transaction of the release's own, and the
        job's next run finds it expired (`_outliving_its_caller`)."""
        intents = PaymentIntentRepository(db)
        seen = await intents.get(account_id, intent_id)
        if seen is None or seen.status is not Status.REQUIRES_CAPTURE:
            return False
        held = seen.latest_charge_id
        charge = None if held is None else await ChargeRepository(db).get(account_id, held)
        if charge is not None:
            await check_expired(db, charge)
        if held is not None:

            async def expire_alone(released: OperationOutcome | None) -> None:
                if released is not None and not _captured_first(released):
                    async with self._engine.begin() as own:
                        await self._expire_if_still_held(own, account_id, intent_id, held)

            try:
                released = await self._outliving_its_caller(
                    self._void(account_id, held, sent_before=sent_before), left_alone=expire_alone
                )
            except StepLeftAlone:
                # No key to keep: a plain cancellation, which the worker's run budget
                # (`asyncio.timeout`) turns into its timeout, as it does no subclass of it.
                raise asyncio.CancelledError() from None
            if _captured_first(released):
                return False  # a capture in flight got there first; its outcome settles it
        return await self._expire_if_still_held(db, account_id, intent_id, held)

    async def _expire_if_still_held(
        self, db: AsyncConnection, account_id: str, intent_id: str, held: str | None
    ) -> bool:
        """Expire the intent, its authorization (of charge `held`) released, unless it has
        moved on meanwhile; whether it expired."""
        intents = PaymentIntentRepository(db)
        intent = await intents.get(account_id, intent_id, for_update=True)
        if (
            intent is None
            or intent.status is not Status.REQUIRES_CAPTURE
            or intent.latest_charge_id != held
        ):
            return False  # captured or canceled meanwhile: that settled the intent
        now = self._now()
        after = transition(intent, Expired(at=now))
        await intents.save(after)
        if intent.latest_charge_id is not None:
            released = await _mark_released(
                ChargeRepository(db), account_id, intent.latest_charge_id, now
            )
            # charge.expired, before the intent's change, whose ledger posting comes last.
            await self._hooks.charge_changed(db, *released, after)
        if after.review_id is not None:
            await self._radar.payment_ended(
                db, account_id, after.review_id, PaymentEnd.NEVER_SETTLED, by=None
            )
        await self._hooks.intent_changed(db, intent, after)
        return True

    async def expire_later(
        self, db: AsyncConnection, account_id: str, intent_id: str, *, failed_job: int
    ) -> None:
        """The expiry job's give-up step: every attempt to release the authorization failed
        (the network is down for long). Left so, the customer's funds stay held at the network
        and the intent `requires_capture` for good: stage the expiry again for later, and tell
        the operator."""
        log.error("could not release the expired authorization of %s (%s) after every "
                  "attempt; trying again in %s", intent_id, account_id,
                  EXPIRY_RETRY_AFTER)  # fmt: skip
        now = self._now()
        await stage_job(
            db,
            EXPIRE_JOB,
            # The failed runs may have sent the release: the next looks it up first.
            {"account_id": account_id, "payment_intent_id": intent_id, "sent_before": True},
            now=now,
            run_at=now + EXPIRY_RETRY_AFTER,
            account_id=account_id,
            # The failed job keeps the first staging's key; one retry per failed job.
            dedupe_key=f"{EXPIRE_JOB}:after_job_{failed_job}",
        )

    # --- Recovery ---------------------------------------------------------------------------

    async def complete_abandoned(
        self, resume: Callable[[KeyRecord], Awaitable[object]], *, limit: int = 20
    ) -> int:
        """The completer: finish requests left at a recovery point by a crash or a client that
        went away. A request that never passed `started` did nothing; its key is dropped so
        that its client's retry starts afresh."""
        now = self._now()
        async with self._engine.begin() as db:
            records = await idempotency.claim_abandoned(db, now=now, limit=limit)
        for reached, record in enumerate(records):
            try:
                await self._complete_one(record, resume, now)
            except asyncio.CancelledError:
                # The process is stopping. The key being worked on releases itself; the batch's
                # later keys would otherwise stay claimed for a lease, refusing their clients'
                # retries as in use.
                async with self._engine.begin() as db:
                    for unreached in records[reached + 1 :]:
                        await idempotency.release(db, unreached)
                raise
        return len(records)

    async def _complete_one(
        self, record: KeyRecord, resume: Callable[[KeyRecord], Awaitable[object]], now: datetime
    ) -> None:
        """The completer's turn at one key of its claimed batch."""
        if record.recovery_point is RecoveryPoint.STARTED:
            await self._forget(record)
            return
        if record.created_at < now - UNFINISHED_ALERT_AGE:
            # Money may be held or taken at the network with nothing in the ledger yet; the
            # completer keeps trying, but something (the acquirer, the vault, a card) keeps
            # failing it, and an operator should look (`remit held-requests`).
            log.warning(
                "%s %s is still unfinished at %s, %s after it began (intent %s, charge %s)",
                record.endpoint,
                record.key,
                record.recovery_point.value,
                now - record.created_at,
                record.payment_intent_id,
                record.charge_id,
            )
        note_request(record.request_id, record.key)
        async with self._engine.begin() as db:
            if not await idempotency.renew(db, record, now=self._now()):
                return  # taken over (a client's retry) since the batch was claimed
        await self._try_to_finish(record, resume)

    async def _try_to_finish(
        self, record: KeyRecord, resume: Callable[[KeyRecord], Awaitable[object]]
    ) -> None:
        """One try of the completer's at the claimed, renewed key of `record`; a failure is
        logged and recorded on the key for an operator (`held_requests`)."""
        try:
            await resume(record)
        except RemitError as error:
            if await self._finished(record):
                # Declines and refusals are outcomes: they were stored for the client.
                log.info("completed %s %s with %s", record.endpoint, record.key, error.code)
                return
            if error.code == "idempotency_key_in_use":
                # A client's retry took the key over when the try's lease ran out: it carries
                # the request on, and nothing failed. (Other conflicts, a cancel's finding the
                # intent authorized anew, say, are failures: noted, and the key let go.)
                log.info("%s %s was taken over by another request", record.endpoint, record.key)
                return
            log.warning(
                "could not complete %s %s yet: %s (%s)",
                record.endpoint,
                record.key,
                error.code or error.kind.name,
                error.message,
            )
            await self._note_failure(record, error)
        except Exception as error:
            if database_fault(error) is DatabaseFault.OVER_LIMIT:
                # Said once: the completer does not try it again (`DATABASE_LIMIT_FAILURE`).
                # Not finished either: past `started`, the network may have acted on it.
                log.error("completing %s %s met a limit of the database; every try would meet "
                          "it, so it is left held for an operator (remit held-requests)",
                          record.endpoint, record.key, exc_info=error)  # fmt: skip
            else:
                log_failure(log, f"completing {record.endpoint} {record.key}", error)
            await self._note_failure(record, error)

    async def _note_failure(self, record: KeyRecord, error: Exception) -> None:
        """Record why the try failed, and let the key go: nobody works on it any more, so a
        client's retry (or an operator's) need not wait for the try's lease to run out. The
        completer's own next try waits for its backoff, which counts from the try."""
        try:
            async with self._engine.begin() as db:
                await note_failure(db, record, failure_of(error, self._now()))
                await idempotency.release(db, record)
        except Exception:
            # The try failed already and is logged; failing to say why on the key must not stop
            # the completer's batch.
            log.exception("could not record why %s %s failed", record.endpoint, record.key)

    async def held_requests(
        self, *, older_than: timedelta, account_id: str | None, limit: int
    ) -> tuple[list[HeldRequest], bool, datetime]:
        """The unfinished requests begun at least `older_than` ago, the oldest first, whether
        there are more, and the time they were read at (their ages count to it)."""
        now = self._now()
        async with self._engine.begin() as db:
            found, more = await held_requests(
                db, now=now, older_than=older_than, account_id=account_id, limit=limit
            )
        return found, more, now

    async def retry_held(
        self, account_id: str, key: str, resume: Callable[[KeyRecord], Awaitable[object]]
    ) -> Retried:
        """An operator's retry of one held request, now: one more try of the completer's,
        whatever its backoff, which finishes the request only with what the network holds. A
        request that never got past `started` is dropped, as the completer drops it. Refused
        for a key that is unknown or finished, and for now for one being worked on right now."""
        now = self._now()
        async with self._engine.begin() as db:
            held = retryable(await idempotency.lock(db, account_id, key), account_id, key, now)
            record = await idempotency.take_over(db, held)
            if record.recovery_point is not RecoveryPoint.STARTED:
                await idempotency.renew(db, record, now=now)
        if record.recovery_point is RecoveryPoint.STARTED:
            await self._forget(record)
            return Retried(RetryOutcome.DROPPED, None)
        log.info("retrying %s %s of %s at an operator's request", record.endpoint, key, account_id)
        note_request(record.request_id, record.key)
        await self._try_to_finish(record, resume)
        async with self._engine.begin() as db:
            after = await held_request(db, account_id, key, now=self._now())
        assert after is not None, "an unfinished key past `started` is never deleted"
        if after.recovery_point is RecoveryPoint.FINISHED:
            return Retried(RetryOutcome.FINISHED, after)
        return Retried(RetryOutcome.STILL_HELD, after)

    async def _finished(self, record: KeyRecord) -> bool:
        """Whether `record`'s key now holds an answer to replay."""
        async with self._engine.begin() as db:
            stored = await idempotency.stored(db, record)
        return stored is not None and stored.finished

    async def reap_keys(self) -> int:
        async with self._engine.begin() as db:
            return await idempotency.reap(db, now=self._now())

    # --- Charges ----------------------------------------------------------------------------

    async def get_charge(
        self, account_id: str, charge_id: str, *, with_refunds: bool = False
    ) -> tuple[Charge, ChargeRefunds]:
        """The charge, and its first refunds when `with_refunds` (otherwise none are read)."""
        async with self._engine.begin() as db:
            charge = await ChargeRepository(db).get(account_id, charge_id)
            if charge is None:
                raise not_found("charge", charge_id)
            return charge, await read_refunds(db, account_id, charge_id, wanted=with_refunds)

    async def update_charge(
        self,
        account_id: str,
        charge_id: str,
        update: ChargeUpdate,
        keyed: Keyed[tuple[Charge, ChargeRefunds]] | None = None,
        *,
        with_refunds: bool = False,
    ) -> Done[tuple[Charge, ChargeRefunds]] | Replay:
        """Change what describes a charge (its intent keeps its own), with its first refunds
        for the answer when `with_refunds`, as GET /v1/charges/{id} shows them."""

        async def change(db: AsyncConnection) -> tuple[Charge, ChargeRefunds]:
            charges = ChargeRepository(db)
            before = await charges.get(account_id, charge_id, for_update=True)
            if before is None:
                raise not_found("charge", charge_id)
            after = updated_charge(before, update, self._now())
            # The receipt email and shipping are among the details the charge copied when it
            # was made, which a save writes only when asked to.
            await charges.save(after, snapshot=True)
            await self._hooks.charge_changed(db, before, after, await self._intent_of(db, after))
            return after, await read_refunds(db, account_id, charge_id, wanted=with_refunds)

        return await run_keyed(self._engine, keyed, self._now(), change)

    async def list_charges(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
        created: CreatedBounds = ANY_TIME,
        customer_id: str | None = None,
        payment_intent_id: str | None = None,
        with_refunds: bool = False,
    ) -> tuple[list[tuple[Charge, ChargeRefunds]], bool]:
        """A page of charges, each with its first refunds when `with_refunds` (read for the
        whole page in one query; otherwise none is read): those of the first charges that fit
        the embedded budget, the others `left_out` for the caller to list on their own."""
        async with self._engine.begin() as db:
            repo = ChargeRepository(db)
            after, before = await self._cursors(
                db, repo.table, account_id, "charge", limit, starting_after, ending_before
            )
            page, more = await repo.page(
                account_id,
                limit=limit,
                starting_after=after,
                ending_before=before,
                created=created,
                customer_id=customer_id,
                payment_intent_id=payment_intent_id,
            )
            refunds = await read_refunds_of_charges(
                db,
                account_id,
                [c.id for c in page],
                wanted=with_refunds,
                budget_bytes=self._embedded_bytes,
            )
            return [(c, refunds[c.id]) for c in page], more

    async def charges_of_intents(
        self, account_id: str, intent_ids: Sequence[str], *, limit: int
    ) -> FirstPages[Charge]:
        """The first `limit` charges of each of `intent_ids` (newest first), whether more follow
        and how many there are, read in two queries for them all: what versions before
        2022-11-15 embed in each intent of a page. An id of no intent of the account has none.
        Only the first intents' whose charges fit the embedded budget are answered (the first
        always): the others are left out, for the caller to ask again."""
        _check_embedded(intent_ids, limit, "payment_intents")
        async with self._engine.begin() as db:
            return await ChargeRepository(db).first_pages_of_intents(
                account_id, intent_ids, limit=limit, budget=Budget(self._embedded_bytes)
            )

    async def refunds_of_charges(
        self, account_id: str, charge_ids: Sequence[str], *, limit: int
    ) -> FirstPages[Refund]:
        """The first `limit` refunds of each of `charge_ids` (newest first), whether more follow
        and how many there are, read in two queries for them all: what versions before
        2022-11-15 embed in each charge of a page. An id of no charge of the account has none.
        Only the first charges' whose refunds fit the embedded budget are answered (the first
        always): the others are left out, for the caller to ask again."""
        _check_embedded(charge_ids, limit, "charges")
        async with self._engine.begin() as db:
            return await RefundRepository(db).first_pages_of_charges(
                account_id, charge_ids, limit=limit, budget=Budget(self._embedded_bytes)
            )

    # --- Refunds ----------------------------------------------------------------------------

    async def create_refund(
        self,
        call: KeyedCall,
        *,
        charge_id: str | None,
        payment_intent_id: str | None,
        amount_minor: int | None,
        reason: RefundReason | None,
        metadata: dict[str, str],
        respond: Callable[[Refund], bytes],
        stores_state_refusals: bool = True,
    ) -> Done[Refund] | Replay:
        """A refund under `call`'s key. An amount no charge could refund (below 1, or past the
        most a payment may be) is refused as invalid and leaves the key free; a refusal by the
        charge's state (`_not_refundable`, such as more than is left of this charge) is stored
        under the key and replayed, as any request's. Not with `stores_state_refusals`
        off: the refusal drops the key, as a validation failure does, so the next request under
        it tries the refund again against the charge as it stands then. That is for a key that
        is no client's: a review's close refunds under the review's own key
        (`remit.radar.reviewing`), and a refusal stored there would be replayed to every later
        close even once the pending refund that reserved the charge failed. The close is told
        the refusal as it happens, and its key is never finished with it: should the key's drop
        not happen (the process dies), it stays at `started`, which an approval, a later close
        and the completer take for a request that did nothing once its lease is over."""
        if (charge_id is None) == (payment_intent_id is None):
            raise invalid("Pass exactly one of charge or payment_intent.", "charge")
        if amount_minor is not None and amount_minor < 1:
            raise invalid(
                "This value must be greater than or equal to 1.",
                "amount",
                code="parameter_invalid_integer",
            )
        if amount_minor is not None and amount_minor > MAX_AMOUNT_MINOR:
            # No charge could ever have this much to refund: a mistake in the request, not a
            # refusal by the charge's state, so the key stays free for the corrected request.
            raise invalid(
                f"The amount to refund must be no more than {MAX_AMOUNT_MINOR}.",
                "amount",
                code="amount_too_large",
            )
        record = await self._claim(call)
        if record.finished:
            return self._replay_of(record)
        crash_after(RecoveryPoint.STARTED.value)
        just_requested = record.recovery_point is RecoveryPoint.STARTED
        if just_requested:
            requested = await self._guard_validation(
                record,
                self._start_refund(
                    record, charge_id, payment_intent_id, amount_minor, reason, metadata
                ),
                stores_refusals=stores_state_refusals,
            )
            if isinstance(requested, Replay):
                return requested
            record = requested
            if record.finished:
                return self._replay_of(record)
        try:
            return await self.resume_refund(record, respond, sent_before=not just_requested)
        except StepLeftAlone:
            raise  # the step lets the key go once it ends
        except BaseException:
            await self._release(record)
            raise

    async def _start_refund(
        self,
        record: KeyRecord,
        charge_id: str | None,
        payment_intent_id: str | None,
        amount_minor: int | None,
        reason: RefundReason | None,
        metadata: dict[str, str],
    ) -> KeyRecord:
        now = self._now()
        async with batched_unit(self._engine) as db:
            stored = await idempotency.relock(db, record)
            if stored.finished:
                return stored  # finished by a retry that took the key over: replayed
            if charge_id is None:
                assert payment_intent_id is not None
                intent = await PaymentIntentRepository(db).get(record.account_id, payment_intent_id)
                if intent is None:
                    raise not_found("payment_intent", payment_intent_id, param="payment_intent")
                if intent.latest_charge_id is None or intent.amount_received_minor == 0:
                    raise _not_refundable(
                        f"This PaymentIntent ({intent.id}) does not have a successful "
                        "charge to refund.",
                        code="charge_not_refundable",
                        param="payment_intent",
                    )
                charge_id = intent.latest_charge_id
            # The refusals below name the parameter the request gave the charge by.
            named = "charge" if payment_intent_id is None else "payment_intent"
            charges = ChargeRepository(db)
            charge = await charges.get(record.account_id, charge_id, for_update=True)
            if charge is None:
                raise not_found("charge", charge_id, param="charge")
            if not charge.captured or charge.status is not ChargeStatus.SUCCEEDED:
                raise _not_refundable(
                    f"Charge {charge.id} has not been captured and cannot be refunded.",
                    code="charge_not_refundable",
                    param=named,
                )
            if charge.disputed:
                # The issuer took the money back already: a refund would return it twice.
                raise _not_refundable(
                    f"Charge {charge.id} has been charged back; cannot issue a refund.",
                    code="charge_disputed",
                    param=named,
                )
            if charge.refundable_minor <= 0:
                raise _not_refundable(
                    f"Charge {charge.id} has already been refunded.",
                    code="charge_already_refunded",
                    param=named,
                )
            if amount_minor is not None:
                # Not the whole rest (no amount given): whatever it is, it can be refunded.
                require_whole_charge_amount(amount_minor, charge.currency, "amount")
            amount = charge.refundable_minor if amount_minor is None else amount_minor
            if amount > charge.refundable_minor:
                # Whatever the charge's other refunds reserve now: one of them may fail later.
                raise _not_refundable(
                    f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                    f"({charge.refundable_minor})",
                    code="amount_too_large",
                    param="amount",
                )
            refund = Refund(
                id=new_id("re"),
                account_id=record.account_id,
                charge_id=charge.id,
                payment_intent_id=charge.payment_intent_id,
                amount_minor=amount,
                currency=charge.currency,
                status=RefundStatus.PENDING,
                created_at=now,
                updated_at=now,
                reason=reason,
                metadata=metadata,
                customer_id=charge.customer_id,
                payment_method_id=charge.payment_method_id,
                # The ledger debits the balance now, under this id (`LedgerPostings`), and
                # keeps it when the refund succeeds: as on Stripe, a pending refund shows it.
                balance_transaction_id=new_id("txn"),
            )
            # The amount is reserved on the charge at once, so concurrent refunds can never
            # add up to more than was captured.
            reserved = replace(
                charge, amount_refunded_minor=charge.amount_refunded_minor + amount, updated_at=now
            )
            await RefundRepository(db).insert(refund)
            await charges.save(reserved)
            # A review of the charge closes when the refund succeeds (`_apply_refund_outcome`),
            # not now: the acquirer may still refuse it, and the payment would stand with its
            # review closed as refunded.
            # The charge shows the refunded amount from now on (charge.refunded), the refund
            # its own progress (refund.created, then refund.updated with the outcome).
            await self._hooks.charge_changed(
                db, charge, reserved, await self._intent_of(db, reserved)
            )
            await self._hooks.refund_changed(db, None, refund, reserved)
            record = await idempotency.advance(
                db,
                record,
                RecoveryPoint.ATTEMPT_CREATED,
                now=now,
                charge_id=charge.id,
                refund_id=refund.id,
            )
        crash_after(RecoveryPoint.ATTEMPT_CREATED.value)
        return record

    async def resume_refund(
        self, record: KeyRecord, respond: Callable[[Refund], bytes], *, sent_before: bool = True
    ) -> Done[Refund] | Replay:
        """Refund at the network and apply its answer, to the end even if the caller is
        cancelled meanwhile (`_outliving_its_caller`). `sent_before`: the refund may have been
        sent already (see `_settle`); only the request that has just recorded it says not.

        Only a pending refund is sent and settled. One that is no longer pending was canceled
        (the completer may resume its request afterwards): the request is answered with the
        refund as it stands, which the acquirer's answer must not change."""
        return await self._outliving_its_caller(
            self._refund_and_record(record, respond, sent_before=sent_before),
            left_alone=self._releasing(record),
        )

    async def _refund_and_record(
        self, record: KeyRecord, respond: Callable[[Refund], bytes], *, sent_before: bool
    ) -> Done[Refund] | Replay:
        assert record.refund_id is not None
        assert record.charge_id is not None
        async with self._engine.begin() as db:
            refund = await RefundRepository(db).get(record.account_id, record.refund_id)
            charge = await ChargeRepository(db).get(record.account_id, record.charge_id)
        assert refund is not None
        assert charge is not None
        assert charge.authorization_id is not None
        reference, authorization_id = refund.id, charge.authorization_id
        operation: OperationOutcome | None = None
        if refund.status is RefundStatus.PENDING:
            async with self._kept_held(record):
                operation = await self._settle(
                    lambda: self._network.refund(
                        authorization_id=authorization_id,
                        amount_minor=refund.amount_minor,
                        reference=reference,
                    ),
                    lambda: self._network.lookup_operation(
                        reference, expected_refund(charge, authorization_id, refund)
                    ),
                    reference,
                    sent_before=sent_before,
                )
            crash_after(REFUND_ANSWERED)
        now = self._now()
        async with batched_unit(self._engine) as db:
            stored = await idempotency.relock(db, record)
            if stored.finished:
                return self._replay_of(stored)
            refunds, charges = RefundRepository(db), ChargeRepository(db)
            current = await refunds.get(record.account_id, refund.id, for_update=True)
            locked_charge = await charges.get(record.account_id, charge.id, for_update=True)
            assert current is not None
            assert locked_charge is not None
            if operation is not None and current.status is RefundStatus.PENDING:
                after = await recorded_after_the_network(
                    self._apply_refund_outcome(
                        db, current, locked_charge, operation, now, by=record
                    ),
                    what=f"the outcome of refund {current.id}",
                )
            else:
                _warn_if_refunded_after_cancel(current, operation)
                after = current
            await idempotency.finish(
                db, record, response_code=0, response_body=respond(after), now=now
            )
        crash_after(RecoveryPoint.FINISHED.value)
        return Done(after)

    async def _apply_refund_outcome(
        self,
        db: AsyncConnection,
        refund: Refund,
        charge: Charge,
        operation: OperationOutcome,
        now: datetime,
        *,
        by: KeyRecord,
    ) -> Refund:
        """The acquirer's answer to a pending `refund` (and `charge`, both locked): succeeded,
        or failed and no longer counted on the charge. `by`: the key of the request refunding.
        """
        if operation.approved:
            after = replace(
                refund,
                status=RefundStatus.SUCCEEDED,
                acquirer_refund_id=operation.operation_id,
                updated_at=now,
                # A refund created before refunds named theirs at creation gets one now.
                balance_transaction_id=refund.balance_transaction_id or new_id("txn"),
            )
            charge_after = charge
            if charge.refunded and charge.review_id is not None:
                # Its refunds reserve all of the charge (a charge never reviewed is not looked
                # up: the review id on its locked row says there is none).
                await self._end_review_if_refunded(db, charge, charge.review_id, after, by=by)
        else:
            # A refund that fails gives its amount back to the charge: the succeeded refunds
            # then cover less than was captured, and the review stays as it is.
            after = replace(
                refund,
                status=RefundStatus.FAILED,
                # The network's own code is kept; it is shown as one of Stripe's values.
                failure_reason=operation.code or "unknown",
                updated_at=now,
                failure_balance_transaction_id=_money_back_id(refund),
            )
            charge_after = await self._stop_counting_refund(db, charge, refund, now)
        await RefundRepository(db).save(after)
        await self._hooks.refund_changed(db, refund, after, charge_after)
        return after

    async def _end_review_if_refunded(
        self,
        db: AsyncConnection,
        charge: Charge,
        review_id: str,
        settled: Refund,
        *,
        by: KeyRecord,
    ) -> None:
        """Close the review of the (locked) charge once its refunds have certainly given back
        all it captured (`refunded_in_full`), `settled` among them as it now stands. While a
        sibling refund is still pending, the review waits for it: whichever settles last
        finds them all settled here (each settles with the charge locked), and closes it if
        they succeeded. As `refunded_as_fraud` when any of them was refunded as fraudulent."""
        siblings = await RefundRepository(db).of_charge(charge.account_id, charge.id)
        refunds = [settled if refund.id == settled.id else refund for refund in siblings]
        if not refunded_in_full(charge, refunds):
            return
        as_fraud = any(
            refund.reason is RefundReason.FRAUDULENT
            for refund in refunds
            if refund.status is RefundStatus.SUCCEEDED
        )
        await self._radar.payment_ended(
            db,
            charge.account_id,
            review_id,
            PaymentEnd.REFUNDED_AS_FRAUD if as_fraud else PaymentEnd.REFUNDED,
            by=by,
        )

    async def _stop_counting_refund(
        self, db: AsyncConnection, charge: Charge, refund: Refund, now: datetime
    ) -> Charge:
        """Give back the amount `refund` reserved on its (locked) charge when it was created:
        it failed or was canceled, so the charge no longer shows it refunded and it can be
        refunded again."""
        after = replace(
            charge,
            amount_refunded_minor=charge.amount_refunded_minor - refund.amount_minor,
            updated_at=now,
        )
        await ChargeRepository(db).save(after)
        await self._hooks.charge_changed(db, charge, after, await self._intent_of(db, after))
        return after

    async def get_refund(self, account_id: str, refund_id: str) -> Refund:
        async with self._engine.begin() as db:
            refund = await RefundRepository(db).get(account_id, refund_id)
        if refund is None:
            raise not_found("refund", refund_id)
        return refund

    async def update_refund(
        self,
        account_id: str,
        refund_id: str,
        metadata: dict[str, str],
        clear: bool,
        unset: list[str],
        keyed: Keyed[Refund] | None = None,
    ) -> Done[Refund] | Replay:
        async def change(db: AsyncConnection) -> Refund:
            repo = RefundRepository(db)
            refund = await repo.get(account_id, refund_id, for_update=True)
            if refund is None:
                raise not_found("refund", refund_id)
            merged = updated_metadata(refund.metadata, clear=clear, unset=unset, values=metadata)
            after = replace(refund, metadata=merged, updated_at=self._now())
            await repo.save(after)
            charge = await ChargeRepository(db).get(account_id, refund.charge_id)
            assert charge is not None
            # refund.updated with the metadata it had, in the update's transaction.
            await self._hooks.refund_changed(db, refund, after, charge)
            return after

        return await run_keyed(self._engine, keyed, self._now(), change)

    async def cancel_refund(
        self, account_id: str, refund_id: str, keyed: Keyed[Refund] | None = None
    ) -> Done[Refund] | Replay:
        """Only a refund waiting on the customer (`requires_action`) can be canceled. It ends
        as a failed refund ends, in the cancel's transaction: the charge stops counting it,
        its hold goes back to the available balance (the ledger hook) under a refund_failure
        balance transaction (`failure_balance_transaction`), refund.updated is recorded. Its
        row lock keeps a resumed request from settling it meanwhile (see `resume_refund`)."""

        async def cancel(db: AsyncConnection) -> Refund:
            refunds = RefundRepository(db)
            refund = await refunds.get(account_id, refund_id, for_update=True)
            if refund is None:
                raise not_found("refund", refund_id)
            if refund.status is not RefundStatus.REQUIRES_ACTION:
                raise RemitError(
                    message=(
                        f"You cannot cancel this refund because it has a status of "
                        f"{refund.status.value}."
                    ),
                    kind=ErrorKind.FAILED_PRECONDITION,
                    code="refund_not_cancelable",
                )
            # Refund, then charge: the order `resume_refund` locks them in.
            charge = await ChargeRepository(db).get(account_id, refund.charge_id, for_update=True)
            assert charge is not None, refund.charge_id
            now = self._now()
            charge_after = await self._stop_counting_refund(db, charge, refund, now)
            after = replace(
                refund,
                status=RefundStatus.CANCELED,
                updated_at=now,
                failure_balance_transaction_id=_money_back_id(refund),
            )
            await refunds.save(after)
            await self._hooks.refund_changed(db, refund, after, charge_after)
            return after

        return await run_keyed(self._engine, keyed, self._now(), cancel)

    async def list_refunds(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
        created: CreatedBounds = ANY_TIME,
        charge_id: str | None = None,
        payment_intent_id: str | None = None,
    ) -> tuple[list[Refund], bool]:
        async with self._engine.begin() as db:
            repo = RefundRepository(db)
            after, before = await self._cursors(
                db, repo.table, account_id, "refund", limit, starting_after, ending_before
            )
            return await repo.page(
                account_id,
                limit=limit,
                starting_after=after,
                ending_before=before,
                created=created,
                charge_id=charge_id,
                payment_intent_id=payment_intent_id,
            )


def _not_refundable(message: str, *, code: str, param: str) -> RemitError:
    """A refund the charge's state refuses (not captured, disputed, or what is left of it to
    refund): FAILED_PRECONDITION, so it is the answer stored under the request's key
    (`_guard_validation`). The state may change (a pending refund that reserved the charge may
    fail, the charge may be captured), and a retry with the key must not then make the refund
    the first request was refused. On the REST API it stays a 400 invalid_request_error."""
    return RemitError(message=message, kind=ErrorKind.FAILED_PRECONDITION, code=code, param=param)


def _money_back_id(refund: Refund) -> str | None:
    """The txn_ id of the refund_failure balance transaction that gives back what `refund`
    took from the balance, now that it failed or was canceled; None for a refund that took
    nothing yet (one pending since before refunds named their balance transaction at
    creation), whose ending writes none."""
    return None if refund.balance_transaction_id is None else new_id("txn")


def _warn_if_refunded_after_cancel(refund: Refund, operation: OperationOutcome | None) -> None:
    """The acquirer refunded a refund canceled while it was being sent. The refund stays
    canceled (its hold is released, the charge no longer counts it), so the money left at the
    acquirer with nothing in the ledger: reconciliation will show it, and an operator should
    look. A refund another request settled meanwhile (succeeded or failed) is no such case:
    its outcome is recorded already."""
    if refund.status is RefundStatus.CANCELED and operation is not None and operation.approved:
        log.error(
            "refund %s of charge %s was canceled while the acquirer refunded it (operation %s)",
            refund.id,
            refund.charge_id,
            operation.operation_id,
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _decline_of(
    result: Mapping[str, object], wants_authentication: bool
) -> tuple[str, str | None, str]:
    """Stripe's code, decline code and message for a failed attempt."""
    if result.get("blocked"):
        return "card_declined", "fraudulent", "Your card was declined."
    if wants_authentication:
        return (
            AUTHENTICATION_REQUIRED,
            AUTHENTICATION_REQUIRED,
            "Your card was declined. This transaction requires authentication.",
        )
    return (
        _text(result.get("code")) or "card_declined",
        _text(result.get("decline_code")),
        _text(result.get("message")) or "Your card was declined.",
    )


def authentication_action(
    challenge: Challenge, intent: PaymentIntent, *, use_stripe_sdk: bool = False
) -> dict[str, object]:
    """Stripe's `next_action` for the 3-D Secure page. With a `return_url` to send the
    cardholder back to, `redirect_to_url`. Without one (`allow_redirects=never`, or an intent
    that accepts cards only), a redirect would strand the cardholder, and Stripe answers
    `use_stripe_sdk`: the client's SDK authenticates in place. So it does when the
    confirmation said the client's SDK handles the action (`use_stripe_sdk=true`, which
    Stripe.js and the mobile SDKs send): they show the challenge without leaving the page or
    the app, whatever return_url the intent has. Stripe documents that hash as opaque and for
    Stripe.js alone; remit's says where the page is, which a client opens in a frame or a
    window of its own."""
    if intent.return_url and not use_stripe_sdk:
        return {
            "type": "redirect_to_url",
            "redirect_to_url": {"url": challenge.url, "return_url": intent.return_url},
        }
    return {
        "type": "use_stripe_sdk",
        "use_stripe_sdk": {
            "type": "three_d_secure_redirect",
            "stripe_js": challenge.url,
            "source": challenge.id,
        },
    }


def _same_secret(presented: str, expected: str) -> bool:
    """Compared in constant time: how long a refusal takes must not tell a guesser how much of
    the secret it had right. As bytes, since any text may be presented."""
    return hmac.compare_digest(presented.encode(), expected.encode())
