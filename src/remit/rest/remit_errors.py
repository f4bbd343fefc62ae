"""Domain errors (from a gRPC reply or raised in the facade) as Stripe error objects."""

from google.protobuf.message import Message

from remit.core.errors import ErrorKind, RemitError
from remit.core.jsonview import JsonObject, to_json
from remit.grpcutil.errors import HTTP_STATUS, MessageTooLargeError
from remit.rest.errors import StripeError


def stripe_error_from_remit(error: RemitError) -> StripeError:
    related = to_json(error.related) if isinstance(error.related, Message) else None
    return StripeError(
        http_status=HTTP_STATUS[error.kind],
        type=error.error_type,
        message=error.message,
        code=error.code,
        param=error.param,
        decline_code=error.decline_code,
        charge=error.charge,
        payment_intent=related,
        # A refusal by the intent's state carries the intent too, but a payment method only
        # when it is a decline's: an earlier decline's, still on the intent, is not its subject.
        payment_method=_failed_payment_method(related)
        if error.error_type == "card_error"
        else None,
        should_retry=_should_retry(error),
    )


def _should_retry(error: RemitError) -> bool | None:
    """`Stripe-Should-Retry`: true when the core invites the retry. A 503 it does not invite
    (a full disk, the acquirer not configured) says false, or the SDKs, which retry a 5xx
    without the header, would try again what only an operator can mend; so does a message
    too large for remit's channels, which a retry makes as large."""
    if error.should_retry:
        return True
    if isinstance(error, MessageTooLargeError):
        return False  # the same answer is as large the next time
    return False if error.kind is ErrorKind.UNAVAILABLE else None


def _failed_payment_method(intent: JsonObject | None) -> str | None:
    """The id of the payment method a card error is about: the intent a decline carries has
    that decline as its `last_payment_error`."""
    error = None if intent is None else intent.get("last_payment_error")
    method = error.get("payment_method") if isinstance(error, dict) else None
    return method if isinstance(method, str) else None
