"""The request a change is made for, so events can name it (`event.request`).

Set when a request claims its idempotency key (or the completer takes one over) and read by
the hooks that record events, without threading it through every call.
"""

from contextvars import ContextVar
from dataclasses import dataclass

AUTO_KEY_PREFIX = "remit-auto-"
# Keys sent with the publishable key are stored under this prefix: that key is public, and
# whoever copies it from a web page must not be able to take the merchant's own keys (a later
# refund under the same key would be refused as reusing it). A key sent with the secret key
# is stored as it is, so keys stored before keep their meaning.
PUBLISHABLE_KEY_PREFIX = "remit-publishable/"


def scoped_key(client_key: str, *, publishable: bool) -> str:
    """The key as stored for a caller's own idempotency key."""
    return f"{PUBLISHABLE_KEY_PREFIX}{client_key}" if publishable else client_key


@dataclass(frozen=True)
class RequestInfo:
    request_id: str | None
    idempotency_key: str | None


current_request: ContextVar[RequestInfo | None] = ContextVar("current_request", default=None)


def note_request(request_id: str | None, key: str) -> None:
    """Remember the request; a key remit made up itself is not the client's to see."""
    client_key = (
        None if key.startswith(AUTO_KEY_PREFIX) else key.removeprefix(PUBLISHABLE_KEY_PREFIX)
    )
    current_request.set(RequestInfo(request_id, client_key))


def note_call(request_id: str | None, idempotency_key: str | None) -> None:
    """Remember the request of a call made without remit's idempotency machinery (customers,
    payment methods): its key, if any, is the client's own."""
    current_request.set(RequestInfo(request_id, idempotency_key))
