"""The root of remit's error hierarchy: every domain error carries Stripe's error vocabulary.

Services raise these; the gRPC layer maps them to status codes with an `ErrorDetail`, and the
REST facade maps that back to Stripe's error object. No layer invents its own wording.
"""

from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from remit.core.text_limits import cut_short


class ErrorKind(Enum):
    """Which gRPC status (and so which HTTP status) an error maps to."""

    INVALID_ARGUMENT = "invalid_argument"  # 400
    NOT_FOUND = "not_found"  # 404
    FAILED_PRECONDITION = "failed_precondition"  # 400, the object is in the wrong state
    CARD_DECLINED = "card_declined"  # 402
    ALREADY_EXISTS = "already_exists"  # 400 idempotency mismatch and duplicates
    CONFLICT = "conflict"  # 409, an idempotency key in flight
    PERMISSION_DENIED = "permission_denied"  # 403
    UNAUTHENTICATED = "unauthenticated"  # 401
    UNAVAILABLE = "unavailable"  # 503, retryable
    RESOURCE_EXHAUSTED = "resource_exhausted"  # 429
    INTERNAL = "internal"  # 500
    # 500 as well, but definite: stored data failed its integrity check, so the operation was
    # not attempted (the vault's card data that does not decrypt). Unlike INTERNAL, a caller
    # knows nothing was sent on.
    DATA_LOSS = "data_loss"


@dataclass(eq=False)
class RemitError(Exception):
    """A failure a caller can act on, in Stripe's terms (`type`, `code`, `param`).

    Not frozen: the interpreter writes `__traceback__` on exceptions as they propagate.
    """

    message: str
    kind: ErrorKind = ErrorKind.INVALID_ARGUMENT
    error_type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    decline_code: str | None = None
    charge: str | None = None
    should_retry: bool = False
    # The object the error is about, embedded in the error as Stripe does (a card error carries
    # its PaymentIntent); a protobuf message, kept untyped so this module stays free of I/O. A
    # domain function may set the domain object instead (`unexpected_state`), which the service
    # turns into its message before the error leaves it.
    related: object | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


# How Stripe names a kind of object in its "No such ..." messages where that is not the
# object's `object` value: payment methods go by their class name.
_NOT_FOUND_NAMES: Final = {"payment_method": "PaymentMethod"}


_ERROR_CODES_PAGE: Final = "https://stripe.com/docs/error-codes/"


def error_code_doc_url(code: str) -> str:
    """Stripe's page on an error code, which every error carrying a code links as `doc_url`
    (in an error response, and in a PaymentIntent's `last_payment_error`): the code with its
    underscores as hyphens, `card_declined` at `.../error-codes/card-declined`."""
    return _ERROR_CODES_PAGE + code.replace("_", "-")


ECHO_LIMIT: Final = 200
"""The most characters of client input a message quotes, as the REST facade quotes it."""


def echoed(text: str) -> str:
    """`text` to quote in a message: cut short if long, since an id may be of any length and
    the refusal that quotes it must stay small enough to deliver."""
    return cut_short(text, ECHO_LIMIT)


def not_found(kind: str, object_id: str, param: str = "id") -> RemitError:
    return RemitError(
        message=f"No such {_NOT_FOUND_NAMES.get(kind, kind)}: '{echoed(object_id)}'",
        kind=ErrorKind.NOT_FOUND,
        code="resource_missing",
        param=param,
    )


def invalid(message: str, param: str | None = None, code: str = "parameter_invalid") -> RemitError:
    return RemitError(message=message, code=code, param=param)


def already_exists(message: str, param: str) -> RemitError:
    """A create of what is there already (a value list's alias, a value in a list): gRPC's
    ALREADY_EXISTS, and on the REST API the 400 invalid_request_error any invalid parameter
    gets, as Stripe answers it."""
    return RemitError(
        message=message, kind=ErrorKind.ALREADY_EXISTS, code="parameter_invalid", param=param
    )
