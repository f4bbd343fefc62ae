"""The `Idempotency-Key` header, checked before anything forwards it.

The key travels to the core in gRPC metadata, which carries printable ASCII only: a key HTTP
let through with other bytes (latin-1 `café`, a control character) would make the call fail
and the client see a 500, which stripe-python retries with the same key, failing forever.
Stripe caps keys at 255 characters (shared reference stripe-wire.md, §4), as the core does.
"""

from typing import Final

from remit.grpcutil.metadata import MAX_IDEMPOTENCY_KEY_LENGTH
from remit.rest.errors import StripeError

HEADER: Final = "Idempotency-Key"
_PRINTABLE_ASCII: Final = frozenset(chr(code) for code in range(0x20, 0x7F))
_METHODS_THAT_IGNORE_KEYS: Final = frozenset({"GET", "DELETE"})
"""Stripe ignores keys on GET and DELETE, which are idempotent by definition; so does remit."""


def well_formed_idempotency_key(key: str | None) -> str | None:
    """`key` if it is one the answer may echo (and the core be sent), else None; refuses
    nothing, so it may be read before the request is authenticated."""
    if not key or idempotency_key_problem(key) is not None:
        return None
    return key


def checked_idempotency_key(method: str, key: str | None) -> str | None:
    """The key to forward, if any. A malformed key is a 400 where keys matter (POST), and is
    dropped, unforwarded and unechoed, where they are ignored (GET, DELETE). A refusal of the
    request's own: called only once the request is authenticated, as an unauthenticated one is
    a 401 whatever else is wrong with it."""
    if not key:
        return None
    problem = idempotency_key_problem(key)
    if problem is None:
        return key
    if method.upper() in _METHODS_THAT_IGNORE_KEYS:
        return None
    raise problem


def idempotency_key_problem(key: str) -> StripeError | None:
    """Why `key` cannot be used as an idempotency key, or None if it can."""
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        return StripeError.idempotency_key_too_long()
    if not set(key) <= _PRINTABLE_ASCII:
        return StripeError.idempotency_key_not_printable_ascii()
    return None
