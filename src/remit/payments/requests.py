"""The request a change is made for, so events can name it (`event.request`).

Set when a request claims its idempotency key (or the completer takes one over) and read by
the hooks that record events, without threading it through every call.
"""

from contextvars import ContextVar
from dataclasses import dataclass

# Every key remit stores for itself begins with one of the prefixes below.
AUTO_KEY_PREFIX = "remit-auto-"
# Keys sent with the publishable key are stored under this prefix: that key is public, and
# whoever copies it from a web page must not be able to take the merchant's own keys (a later
# refund under the same key would be refused as reusing it). A key sent with the secret key
# is stored as it is, so keys stored before keep their meaning.
PUBLISHABLE_KEY_PREFIX = "remit-publishable/"
# The keys of remit's own inner calls (a review close's refund or cancel): stored in the same
# table as the callers' keys, but where no caller's key can land, so a caller can neither block
# them nor be answered with their result.
INTERNAL_KEY_PREFIX = "remit-internal/"
# A key sent with the secret key that happens to begin with one of the prefixes remit stores its
# own keys under is stored one level down, so that it cannot be taken for one of them. Any
# other key, `remit-order-42` included, is stored as sent, as it always was: renaming it would
# make a retry across an upgrade miss the key its first try stored, and pay a second time.
ESCAPED_KEY_PREFIX = "remit-client/"
_OWN_KEY_PREFIXES = (
    AUTO_KEY_PREFIX,
    PUBLISHABLE_KEY_PREFIX,
    INTERNAL_KEY_PREFIX,
    ESCAPED_KEY_PREFIX,
)


def scoped_key(client_key: str, *, publishable: bool) -> str:
    """The key as stored for a caller's own idempotency key."""
    if publishable:
        return f"{PUBLISHABLE_KEY_PREFIX}{client_key}"
    if client_key.startswith(_OWN_KEY_PREFIXES):
        return f"{ESCAPED_KEY_PREFIX}{client_key}"
    return client_key


def internal_key(name: str) -> str:
    """The key as stored for one of remit's own inner calls."""
    return f"{INTERNAL_KEY_PREFIX}{name}"


def client_key_of(key: str) -> str | None:
    """The caller's own key behind a stored one; None for a key remit made up itself."""
    for prefix in (ESCAPED_KEY_PREFIX, PUBLISHABLE_KEY_PREFIX):
        if key.startswith(prefix):
            return key.removeprefix(prefix)
    if key.startswith((AUTO_KEY_PREFIX, INTERNAL_KEY_PREFIX)):
        return None
    return key


@dataclass(frozen=True)
class RequestInfo:
    request_id: str | None
    idempotency_key: str | None


current_request: ContextVar[RequestInfo | None] = ContextVar("current_request", default=None)


def note_request(request_id: str | None, key: str) -> None:
    """Remember the request; a key remit made up itself is not the client's to see."""
    current_request.set(RequestInfo(request_id, client_key_of(key)))


def note_call(request_id: str | None, idempotency_key: str | None) -> None:
    """Remember the request of a call made without remit's idempotency machinery (customers,
    payment methods): its key, if any, is the client's own."""
    current_request.set(RequestInfo(request_id, idempotency_key))
