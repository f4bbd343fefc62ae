"""The request a change is made for, so events can name it (`event.request`).

Set when a request claims its idempotency key (or the completer takes one over) and read by
the hooks that record events, without threading it through every call.
"""

from contextvars import ContextVar
from dataclasses import dataclass

AUTO_KEY_PREFIX = "remit-auto-"


@dataclass(frozen=True)
class RequestInfo:
    request_id: str | None
    idempotency_key: str | None


current_request: ContextVar[RequestInfo | None] = ContextVar("current_request", default=None)


def note_request(request_id: str | None, key: str) -> None:
    """Remember the request; a key remit made up itself is not the client's to see."""
    client_key = None if key.startswith(AUTO_KEY_PREFIX) else key
    current_request.set(RequestInfo(request_id, client_key))


def note_call(request_id: str | None, idempotency_key: str | None) -> None:
    """Remember the request of a call made without remit's idempotency machinery (customers,
    payment methods): its key, if any, is the client's own."""
    current_request.set(RequestInfo(request_id, idempotency_key))
