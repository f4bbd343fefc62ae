"""Calls under an idempotency key, as the services see them, and the one way to run a change
that is a single transaction under its key.

Customers, payment methods, tokens, payouts and the like change the database in one transaction
and ask nothing whose outcome could be unknown, so they need no recovery points: the key, the
change and the answer to replay commit together or not at all. A retry with the key (the SDKs
send one with every retried POST) replays the first answer instead of making a second customer
or paying out twice; other parameters under the key are 400 idempotency_error, and a second
request while the first is still in its transaction waits for it and then replays. A refused
change rolls the key back with it, so validation failures are not stored. A call without a
client key runs as a plain transaction: nobody can retry it by key, so there is nothing to
record. (Payments, which call the network, use recovery points instead: `payments.service`.)
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.payments import idempotency
from remit.payments.idempotency import KeyRecord

T = TypeVar("T")


@dataclass(frozen=True)
class KeyedCall:
    """One mutating call as the idempotency layer sees it."""

    account_id: str
    key: str
    endpoint: str
    request_body: bytes
    request_id: str | None = None

    def claim_fields(self, now: datetime) -> dict[str, Any]:
        """The keyword arguments `idempotency.begin` and `claim_new` take for this call."""
        return {
            "account_id": self.account_id,
            "key": self.key,
            "endpoint": self.endpoint,
            "request_body": self.request_body,
            "request_id": self.request_id,
            "now": now,
        }


@dataclass(frozen=True)
class Replay:
    """A stored response: gRPC status code (0 for OK) and the serialized reply or status."""

    code: int
    body: bytes


@dataclass(frozen=True)
class Done(Generic[T]):
    value: T


def replay_of(record: KeyRecord) -> Replay:
    """The stored answer of a finished key."""
    assert record.response_code is not None
    assert record.response_body is not None
    return Replay(code=record.response_code, body=record.response_body)


Work = Callable[[AsyncConnection], Awaitable[T]]


@dataclass(frozen=True)
class Keyed(Generic[T]):
    """A change asked for under a client key, and how to store its answer for replay."""

    call: KeyedCall
    respond: Callable[[T], bytes]


async def run_keyed(
    engine: AsyncEngine, keyed: Keyed[T] | None, now: datetime, work: Work[T]
) -> Done[T] | Replay:
    """`work` in one transaction; under a key, the first answer for good."""
    async with engine.begin() as db:
        if keyed is None:
            return Done(await work(db))
        record = await idempotency.begin(db, **keyed.call.claim_fields(now))
        if record.finished:
            return replay_of(record)
        value = await work(db)
        body = keyed.respond(value)
        await idempotency.finish(db, record, response_code=0, response_body=body)
    return Done(value)


def value_of(result: Done[T] | Replay) -> T:
    """The value of a run without a key, which cannot be a replay."""
    assert isinstance(result, Done), "only a keyed call replays"
    return result.value
