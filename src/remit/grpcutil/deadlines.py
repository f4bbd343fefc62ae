"""How long the call being served may still take, for the calls it makes in turn.

gRPC gives a handler its caller's deadline (`context.time_remaining()`). A call the handler
makes on (the core to the vault, the vault to the acquirer) must end before it, with a moment
to spare for the handler to record the answer and reply: one that outlasts it is cancelled
part-way when the caller gives up, and its answer, if the network gave one, is lost.

The deadline is noted once per call by the error mapping interceptor, which wraps every
handler of remit's services (`remit.grpcutil.errors`), and kept in a context variable, so that
the code that calls the network reads it without every layer between passing it on. Work that
no call started (the completer, the worker) has no deadline: `remaining_s()` is None.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final

import grpc

# What a handler keeps for itself when it bounds a call it makes: time to record the answer
# and to reply before its own caller's deadline.
ANSWER_MARGIN_S: Final = 1.0

# The monotonic clock's reading at which the call being served is out of time.
_deadline: ContextVar[float | None] = ContextVar("remit_call_deadline", default=None)


def note_deadline(context: grpc.aio.ServicerContext[Any, Any]) -> None:
    """Remember the deadline of the call `context` serves (none when its caller set none)."""
    remaining = context.time_remaining()
    _deadline.set(None if remaining is None else time.monotonic() + remaining)


@contextmanager
def deadline_in(seconds: float | None) -> Iterator[None]:
    """Serve what runs inside as a call with `seconds` left (None: without a deadline)."""
    token = _deadline.set(None if seconds is None else time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining_s() -> float | None:
    """The seconds left to the call being served, never below 0; None without a deadline."""
    deadline = _deadline.get()
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def has_time_for(seconds: float) -> bool:
    """Whether `seconds` of work, and the margin to answer after it, fit before the deadline."""
    remaining = remaining_s()
    return remaining is None or remaining - ANSWER_MARGIN_S >= seconds


def bounded_timeout(configured_s: float) -> float:
    """The timeout for a call made on: `configured_s`, shortened to end `ANSWER_MARGIN_S`
    before the deadline of the call being served."""
    remaining = remaining_s()
    if remaining is None:
        return configured_s
    return max(0.0, min(configured_s, remaining - ANSWER_MARGIN_S))
