"""Stripe's error object (`{"error": {...}}`) and the HTTP status each error travels with.

stripe-python picks its exception class from the HTTP status (400 InvalidRequestError, 401
AuthenticationError, 402 CardError, 403 PermissionError, 404 InvalidRequestError, 409 APIError,
429 RateLimitError, 5xx APIError) and from `type == "idempotency_error"` (IdempotencyError), so
the status and type chosen here decide what a client catches (shared reference stripe-wire.md,
§3). Messages quote Stripe where the reference records its wording.
"""

import re
from collections.abc import Collection, Mapping
from dataclasses import FrozenInstanceError, dataclass, fields
from typing import Final, Self

from remit.core.errors import error_code_doc_url
from remit.core.text_limits import cut_short
from remit.grpcutil.metadata import MAX_IDEMPOTENCY_KEY_LENGTH
from remit.rest.forms import FormDecodeError
from remit.rest.params import ParamError

INVALID_REQUEST_ERROR: Final = "invalid_request_error"
IDEMPOTENCY_ERROR: Final = "idempotency_error"
CARD_ERROR: Final = "card_error"
API_ERROR: Final = "api_error"

_MASK: Final = "********"
_KEY_SHAPE = re.compile(r"((?:sk|rk|pk)_(?:test|live)_)([A-Za-z0-9]+)")
_SHORTEST_SECRET_SHOWING_LAST_FOUR: Final = 12
_ECHO_LIMIT: Final = 200

_MISSING_API_KEY_MESSAGE: Final = (
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://stripe.com/docs/api#authentication for details, or we can help at "
    "https://support.stripe.com/."
)


@dataclass(eq=False)
class StripeError(Exception):
    """One error response. Raise it anywhere in a request; the app renders `to_body()` with
    `http_status` and, if `should_retry` is set, a `Stripe-Should-Retry` header.

    Its fields cannot be reassigned, but it is not a frozen dataclass: the interpreter writes
    `__traceback__` (and `add_note` writes `__notes__`) on exceptions, which a frozen dataclass
    refuses, for instance when the error passes through a `@contextmanager`.
    """

    http_status: int
    type: str
    message: str
    code: str | None = None
    param: str | None = None
    decline_code: str | None = None
    charge: str | None = None
    payment_intent: Mapping[str, object] | None = None
    payment_method: Mapping[str, object] | str | None = None
    """The PaymentMethod object; its id until the facade has fetched it."""
    payment_method_type: str | None = None
    setup_intent: Mapping[str, object] | None = None
    advice_code: str | None = None
    network_advice_code: str | None = None
    network_decline_code: str | None = None
    doc_url: str | None = None
    user_message: str | None = None
    should_retry: bool | None = None
    """Sent as the `Stripe-Should-Retry` header, never in the body."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _ALL_FIELDS and name in self.__dict__:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if name in _ALL_FIELDS:
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super().__delattr__(name)

    def __str__(self) -> str:
        return self.message

    def to_body(self) -> dict[str, dict[str, object]]:
        """The JSON response body: `type`, `message` and only the other fields that are set;
        an error with a code links Stripe's page on it (`doc_url`) unless it names another."""
        error: dict[str, object] = {}
        for name in _BODY_FIELDS:
            value = getattr(self, name)
            if name == "doc_url" and value is None and self.code is not None:
                value = error_code_doc_url(self.code)
            if value is None:
                continue
            error[name] = dict(value) if isinstance(value, Mapping) else value
        return {"error": error}

    # --- Authentication and permissions (401, 403) --------------------------------------

    @classmethod
    def missing_api_key(cls) -> Self:
        return cls(401, INVALID_REQUEST_ERROR, _MISSING_API_KEY_MESSAGE)

    @classmethod
    def invalid_api_key(cls, presented: str) -> Self:
        """The key is unknown or malformed. Only a masked form of it is ever echoed."""
        shown = mask_api_key(presented) if presented else "(an empty key)"
        return cls(401, INVALID_REQUEST_ERROR, f"Invalid API Key provided: {shown}")

    @classmethod
    def expired_api_key(cls, presented: str) -> Self:
        return cls(
            401,
            INVALID_REQUEST_ERROR,
            f"Expired API Key provided: {mask_api_key(presented)}",
            code="api_key_expired",
        )

    @classmethod
    def permission_denied(cls, message: str | None = None) -> Self:
        return cls(
            403,
            INVALID_REQUEST_ERROR,
            message or "The provided key does not have the required permissions for this request.",
        )

    @classmethod
    def publishable_key_not_allowed(cls) -> Self:
        return cls.permission_denied(
            "This API call cannot be made with a publishable API key. Please use a secret API key."
        )

    @classmethod
    def connect_not_supported(cls, header: str, named: str) -> Self:
        """A Connect header naming an account other than the key's (`remit.rest.connect_headers`):
        Stripe's 403 for an account that is no Connect platform, its wording first."""
        return cls.permission_denied(
            "Only Stripe Connect platforms can work with other accounts, and remit does not "
            f"support Connect: the {header} header names '{_limit(named)}', which is not the "
            "account of the API key used. To act on that account, use its own API key and "
            f"send no {header} header."
        )

    # --- Routing (404) ------------------------------------------------------------------

    @classmethod
    def resource_missing(cls, kind: str, object_id: str, param: str | None = "id") -> Self:
        """`No such payment_intent: 'pi_123'`; `param` names where the id came from."""
        return cls(
            404,
            INVALID_REQUEST_ERROR,
            f"No such {kind}: '{_limit(object_id)}'",
            code="resource_missing",
            param=param,
        )

    @classmethod
    def route_not_found(cls, method: str, path: str) -> Self:
        return cls(
            404,
            INVALID_REQUEST_ERROR,
            f"Unrecognized request URL ({_limit(method.upper())}: {_limit(path)}). Please see "
            "https://stripe.com/docs or we can help at https://support.stripe.com/.",
        )

    @classmethod
    def method_not_allowed(cls, method: str, path: str) -> Self:
        """Stripe answers a known path with the wrong method exactly like an unknown URL: 404,
        which stripe-python raises as InvalidRequestError (a 405 would become APIError)."""
        return cls.route_not_found(method, path)

    # --- Request validation (400) -------------------------------------------------------

    @classmethod
    def invalid_request(
        cls, message: str, *, code: str | None = None, param: str | None = None
    ) -> Self:
        return cls(400, INVALID_REQUEST_ERROR, message, code=code, param=param)

    @classmethod
    def from_param_error(cls, error: ParamError) -> Self:
        return cls.invalid_request(error.message, code=error.code, param=error.param)

    @classmethod
    def from_form_error(cls, error: FormDecodeError) -> Self:
        return cls.invalid_request(error.message, param=error.param)

    @classmethod
    def unknown_api_version(cls, requested: str, known: Collection[str]) -> Self:
        # Versions are dated, so sorting them puts the newest first; a client that sent a typo
        # finds the one it meant in the list.
        listed = sorted(known, reverse=True)
        newest = (
            f" The newest is {listed[0]}; known versions: {', '.join(listed)}." if known else ""
        )
        return cls.invalid_request(
            f"Invalid Stripe-Version: '{_limit(requested)}' is not an API version this server "
            f"supports.{newest} See https://docs.stripe.com/api-versions."
        )

    # --- Idempotency (400, 409) ---------------------------------------------------------

    @classmethod
    def idempotency_mismatch(cls, key: str) -> Self:
        """The key was first used with different parameters."""
        return cls(
            400,
            IDEMPOTENCY_ERROR,
            "Keys for idempotent requests can only be used with the same parameters they were "
            f"first used with. Try using a key other than '{_limit(key)}' if you meant to "
            "execute a different request.",
        )

    @classmethod
    def idempotency_in_use(cls) -> Self:
        """Another request with the same key is still running; the client may retry."""
        return cls(
            409,
            IDEMPOTENCY_ERROR,
            "There is currently another in-progress request using this idempotency key "
            "(probably from an automatic retry). Retry this request later.",
            code="idempotency_key_in_use",
        )

    @classmethod
    def idempotency_key_too_long(cls) -> Self:
        return cls.invalid_request(
            "The Idempotency-Key header is too long: idempotency keys can be at most "
            f"{MAX_IDEMPOTENCY_KEY_LENGTH} characters long."
        )

    @classmethod
    def idempotency_key_not_printable_ascii(cls) -> Self:
        """The key is not echoed: it is what cannot travel further."""
        return cls.invalid_request(
            "The Idempotency-Key header may contain only printable ASCII characters (letters, "
            "digits, punctuation and spaces). A V4 UUID is a good key."
        )

    # --- Load and failures (429, 500) ---------------------------------------------------

    @classmethod
    def rate_limited(cls, *, should_retry: bool | None = None) -> Self:
        return cls(
            429,
            INVALID_REQUEST_ERROR,
            "Request rate limit exceeded. Reduce the rate of your requests, backing off "
            "exponentially before retrying.",
            code="rate_limit",
            should_retry=should_retry,
        )

    @classmethod
    def body_too_slow(cls, detail: str) -> Self:
        """A request whose body did not arrive in time (`remit.rest.body_deadline`): nothing
        was done and nothing is stored under its key, so it may be sent again."""
        return cls(
            408,
            INVALID_REQUEST_ERROR,
            f"The request timed out: {detail}. Nothing was done; the request can be sent again.",
            should_retry=True,
        )

    @classmethod
    def stopping(cls) -> Self:
        """A request cut off by the server stopping: whatever it had started is finished and
        recorded under its key, so the same request with the same key is safe to retry."""
        return cls(
            503,
            API_ERROR,
            "The server stopped before the request completed. Retrying the request with the "
            "same idempotency key is safe.",
            should_retry=True,
        )

    @classmethod
    def api_error(cls, message: str | None = None) -> Self:
        """An unexpected server failure. The default message reveals nothing internal."""
        return cls(
            500,
            API_ERROR,
            message
            or "An unexpected error occurred while processing your request. Retrying "
            "the request with the same idempotency key is safe.",
        )


_ALL_FIELDS: Final = frozenset(field.name for field in fields(StripeError))
_BODY_FIELDS: Final = tuple(
    field.name for field in fields(StripeError) if field.name not in {"http_status", "should_retry"}
)


def mask_api_key(presented: str) -> str:
    """How an API key may appear in a response: `sk_test_********1234`.

    Only the mode prefix and the last four characters of a well-formed, long key are shown;
    anything else is masked entirely, since a malformed value may be some other secret.
    """
    match = _KEY_SHAPE.fullmatch(presented)
    if match is None:
        return _MASK
    prefix, secret = match.groups()
    if len(secret) < _SHORTEST_SECRET_SHOWING_LAST_FOUR:
        return prefix + _MASK
    return f"{prefix}{_MASK}{secret[-4:]}"


def _limit(text: str) -> str:
    """Cap client-supplied text echoed in a message."""
    return cut_short(text, _ECHO_LIMIT)
