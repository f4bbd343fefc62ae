"""Calls under an idempotency key, as the services see them, and the one way to run a change
that is a single transaction under its key.

Customers, payment methods, tokens, payouts and the like change the database in one transaction
and ask nothing whose outcome could be unknown, so they need no recovery points: the key, the
change and the answer to replay commit together or not at all. A retry with the key (the SDKs
send one with every retried POST) replays the first answer instead of making a second customer
or paying out twice; other parameters under the key are 400 idempotency_error, and a second
request while the first is still in its transaction waits for it and then replays.

Refusals follow Stripe's rule: the answer is saved once the endpoint's work has begun, and only
a request whose parameters fail validation leaves its key free (shared reference
stripe-wire.md, section 4). A refusal by the state of things (the balance does not cover a
payout, the object is in the wrong state, a card is declined) rolls back the work and is then
stored on the key in a second short transaction, so a retry hours later replays the refusal
instead of doing the work against a changed world. A call without a client key runs as a plain
transaction: nobody can retry it by key, so there is nothing to record. (Payments, which call
the network, use recovery points instead: `payments.service`.)
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.errors import to_rpc_status
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
    # The REST request's URL path, when an HTTP request made the call.
    request_path: str | None = None

    def claim_fields(self, now: datetime) -> dict[str, Any]:
        """The keyword arguments `idempotency.begin` and `claim_new` take for this call."""
        return {
            "account_id": self.account_id,
            "key": self.key,
            "endpoint": self.endpoint,
            "request_body": self.request_body,
            "request_id": self.request_id,
            "request_path": self.request_path,
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


def stored_error(error: RemitError) -> Replay:
    """An error as a key stores it: its gRPC status code and the rich status to replay."""
    status = to_rpc_status(error)
    return Replay(code=status.code, body=status.SerializeToString())


# The kinds of refusal that are the outcome of a call's work rather than of its parameters.
# Validation (INVALID_ARGUMENT, and NOT_FOUND for an id that names nothing) is not stored: the
# client may fix the request and send it again under the same key. Neither are conflicts with a
# concurrent request nor failures of remit itself (UNAVAILABLE, INTERNAL): the work was rolled
# back and a retry may well succeed.
STORED_REFUSALS = frozenset({ErrorKind.FAILED_PRECONDITION, ErrorKind.CARD_DECLINED})


def is_stored_refusal(error: RemitError) -> bool:
    return error.kind in STORED_REFUSALS


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
    """`work` in one transaction; under a key, the first answer for good, refusals included."""
    if keyed is None:
        async with engine.begin() as db:
            return Done(await work(db))
    refusal: RemitError | None = None
    try:
        async with engine.begin() as db:
            record = await idempotency.begin(db, **keyed.call.claim_fields(now))
            if record.finished:
                return replay_of(record)
            try:
                value = await work(db)
            except RemitError as error:
                if is_stored_refusal(error):
                    refusal = error
                raise
            body = keyed.respond(value)
            await idempotency.finish(db, record, response_code=0, response_body=body, now=now)
    except RemitError as error:
        if error is not refusal:
            raise
    if refusal is not None:
        # The work's transaction rolled back whole; the refusal is stored on its own.
        return await store_refusal(engine, keyed.call, now, refusal)
    return Done(value)


async def store_refusal(
    engine: AsyncEngine, call: KeyedCall, now: datetime, refusal: RemitError
) -> Replay:
    """Store `refusal` on the key (its work is rolled back) and raise it; if a twin request
    with the key finished meanwhile, its answer is the key's and is replayed instead. The key
    may be new here (the work's transaction claimed it and rolled back) or claimed already."""
    async with engine.begin() as db:
        record = await idempotency.begin(db, **call.claim_fields(now))
        if record.finished:
            return replay_of(record)
        stored = stored_error(refusal)
        await idempotency.finish(
            db, record, response_code=stored.code, response_body=stored.body, now=now
        )
    raise refusal


def value_of(result: Done[T] | Replay) -> T:
    """The value of a run without a key, which cannot be a replay."""
    assert isinstance(result, Done), "only a keyed call replays"
    return result.value
