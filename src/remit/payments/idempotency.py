"""Idempotency keys with recovery points, after Stripe's design.

A mutating request runs as a series of local transactions separated by recovery points. The key's
row records the last point reached, the objects created so far, and, once finished, the response
(success or error) to replay. A retry with the same key resumes from the recorded point; a
finished key replays; a key whose request is still running is refused with 409; a key reused
for another endpoint or other parameters is refused with 400. A request that dies leaves its
lease to expire, after which a retry or the completer resumes it.
"""

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Final

from sqlalchemy import DateTime, Select, delete, literal, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.config import idempotency_lease_s
from remit.core.errors import ErrorKind, RemitError, echoed
from remit.payments.requests import client_key_of
from remit.payments.tables import idempotency_keys
from remit.storage.fastsql import Db, Statement

# How long a key answers for its request, and how long it is kept, counted from when its request
# was over (`life_began`): a request held for days (an acquirer outage) and finished at last
# answers its client's retries for a day from then, not from when it began.
KEY_LIFETIME = timedelta(hours=24)
KEY_RETENTION = timedelta(hours=72)
# The longest the completer waits between two tries of a key (`abandoned_keys`).
COMPLETER_MAX_GAP = timedelta(hours=1)
# The failure code of a try that met a limit of the database (SQLSTATE class 54: a value too
# large to index, a statement too complex). The same request meets it on every try, however
# long the completer waits, so the completer leaves such a key alone (`abandoned_keys`): it
# stays held, listed by `remit held-requests` with that failure, for an operator's retry once
# the cause is dealt with (`held_requests`).
DATABASE_LIMIT_FAILURE: Final = "database_limit"
# What a key that starts over (`_claim_existing`) keeps of the completer's tries of its earlier
# life: nothing.
NO_TRIES: Mapping[str, object] = {
    "completer_attempts": 0,
    "last_failure_at": None,
    "last_failure_code": None,
    "last_failure_message": None,
    "last_failure_reference": None,
    "last_failure_operation": None,
    "last_failure_fields": None,
}


class RecoveryPoint(Enum):
    STARTED = "started"
    ATTEMPT_CREATED = "attempt_created"
    AUTHORIZATION_DONE = "authorization_done"
    FINISHED = "finished"


@dataclass(frozen=True)
class KeyRecord:
    account_id: str
    key: str
    endpoint: str
    request_body: bytes
    recovery_point: RecoveryPoint
    response_code: int | None
    response_body: bytes | None
    payment_intent_id: str | None
    charge_id: str | None
    refund_id: str | None
    request_id: str | None
    created_at: datetime
    # A fencing token: whoever claims the key (a request, its retry after the lease ran out,
    # the completer) writes a fresh one, and every later write checks it, so a request that
    # lost its claim can never write over the one that took it.
    owner: str = ""

    @property
    def finished(self) -> bool:
        return self.recovery_point is RecoveryPoint.FINISHED


def lease() -> timedelta:
    """How long a request owns its key without reaching a recovery point or being heard from:
    a step at the network may take longer (`remit.payments.step_bounds`), and the request
    renews the lease while it waits on one (`prolong`, `remit.payments.key_heartbeat`), so
    the lease only says how soon a request that died gives its key up.
    REMIT_IDEMPOTENCY_LEASE_S overrides it, for tests that crash a process and retry at
    once."""
    return timedelta(seconds=idempotency_lease_s())


def digest(endpoint: str, request_body: bytes) -> bytes:
    return hashlib.sha256(endpoint.encode() + b"\x00" + request_body).digest()


def _another_key(stored_key: str) -> str:
    """Stripe's advice to use another key, naming the key as the client sent it: a stored key
    may carry a prefix of remit's own (a publishable key's `remit-publishable/`), which is
    nothing the client ever wrote."""
    client_key = client_key_of(stored_key)
    if client_key is None:
        return "Try using another key if you meant to execute a different request."
    return f"Try using a key other than '{client_key}' if you meant to execute a different request."


class IdempotencyMismatchError(RemitError):
    """A key first used with other parameters (`idempotency_mismatch`): the same request may
    have been recorded in another form, which a caller that knows it may try
    (`remit.payment_methods.service`, a card known by its fingerprint)."""


def idempotency_mismatch(key: str) -> IdempotencyMismatchError:
    """`key` (as stored) was first used with other parameters."""
    return IdempotencyMismatchError(
        message=(
            "Keys for idempotent requests can only be used with the same parameters they were "
            f"first used with. {_another_key(key)}"
        ),
        kind=ErrorKind.ALREADY_EXISTS,
        error_type="idempotency_error",
    )


def idempotency_endpoint_mismatch(
    key: str,
    *,
    endpoint: str,
    first_endpoint: str,
    path: str | None = None,
    first_path: str | None = None,
) -> RemitError:
    """`key` (as stored) was first used for another endpoint. A REST client is told the URL
    paths, as Stripe tells them (`'/v1/invoices/in_x/pay' vs '/v1/invoices'`, an object's id
    included); a gRPC caller, which sent no path, the RPCs (`CreatePaymentIntent`). A key whose
    first request left no path (stored before paths were kept) is named "another endpoint"
    rather than by an RPC a REST client never called."""
    if path is None:
        this, first = f"'{endpoint}'", f"'{first_endpoint}'"
    else:
        this = f"'{echoed(path)}'"
        first = "another endpoint" if first_path is None else f"'{echoed(first_path)}'"
    return RemitError(
        message=(
            "Keys for idempotent requests can only be used for the same endpoint they were "
            f"first used for ({this} vs {first}). {_another_key(key)}"
        ),
        kind=ErrorKind.ALREADY_EXISTS,
        error_type="idempotency_error",
    )


def idempotency_in_use() -> RemitError:
    return RemitError(
        message=(
            "There is currently another in-progress request using this Idempotent Key "
            "(that probably means you submitted twice, and the other request is still going "
            "through). Please try again later."
        ),
        kind=ErrorKind.CONFLICT,
        # Stripe's type for every error about an idempotency key, this 409 included.
        error_type="idempotency_error",
        code="idempotency_key_in_use",
        should_retry=True,
    )


# The statements every keyed request runs, sent straight to the driver (remit.storage.fastsql).
_COLUMNS = (
    "account_id, key, endpoint, request_digest, request_body, recovery_point, locked_until, "
    "response_code, response_body, payment_intent_id, charge_id, refund_id, request_id, "
    "created_at, last_run_at, owner, request_path, finished_at"
)
_CLAIM = Statement(
    "INSERT INTO idempotency_keys (account_id, key, endpoint, request_digest, request_body, "  # noqa: S608
    "recovery_point, locked_until, request_id, created_at, last_run_at, owner, request_path) "
    "VALUES (%(account_id)s, %(key)s, %(endpoint)s, %(request_digest)s, %(request_body)s, "
    "%(recovery_point)s, %(locked_until)s, %(request_id)s, %(created_at)s, %(last_run_at)s, "
    f"%(owner)s, %(request_path)s) ON CONFLICT (account_id, key) DO NOTHING RETURNING {_COLUMNS}"
)
_LOCK = Statement(
    f"SELECT {_COLUMNS} FROM idempotency_keys "  # noqa: S608
    "WHERE account_id = %(account_id)s AND key = %(key)s FOR UPDATE"
)
# The owner token fences the key: a request that lost its claim writes nothing. The statement
# checks that on the server (`remit_require`), so a failed fence fails the transaction even when
# the write goes out with its COMMIT (`remit.storage.engine.batched_unit`).
_KEY_NOT_HELD = "RM409"
_FENCED = {_KEY_NOT_HELD: lambda _message: idempotency_in_use()}


def _fenced_update(assignments: str) -> str:
    return (
        f"WITH fenced AS (UPDATE idempotency_keys SET {assignments} "  # noqa: S608 (constant)
        "WHERE account_id = %(account_id)s AND key = %(key)s AND owner = %(owner)s "
        "RETURNING 1) "
        f"SELECT remit_require(count(*) = 1, '{_KEY_NOT_HELD}', "
        "'the idempotency key is no longer held by this request') FROM fenced"
    )


_ADVANCE = Statement(
    _fenced_update(
        "recovery_point = %(recovery_point)s, locked_until = %(locked_until)s, "
        "payment_intent_id = COALESCE(%(payment_intent_id)s, payment_intent_id), "
        "charge_id = COALESCE(%(charge_id)s, charge_id), "
        "refund_id = COALESCE(%(refund_id)s, refund_id)"
    ),
    refusals=_FENCED,
)
_FINISH = Statement(
    _fenced_update(
        "recovery_point = %(recovery_point)s, locked_until = NULL, "
        "response_code = %(response_code)s, response_body = %(response_body)s, "
        "finished_at = %(finished_at)s"
    ),
    refusals=_FENCED,
)
# How often a claim tries again when the key's row vanishes between its insert and its lock.
_CLAIM_TRIES: Final = 3
_RELEASE = Statement(
    "UPDATE idempotency_keys SET locked_until = NULL "
    "WHERE account_id = %(account_id)s AND key = %(key)s AND owner = %(owner)s"
)


def _record(row: object) -> KeyRecord:
    m = row if isinstance(row, dict) else row._mapping  # type: ignore[attr-defined]
    return KeyRecord(
        account_id=m["account_id"],
        key=m["key"],
        endpoint=m["endpoint"],
        request_body=bytes(m["request_body"]),
        recovery_point=RecoveryPoint(m["recovery_point"]),
        response_code=m["response_code"],
        response_body=None if m["response_body"] is None else bytes(m["response_body"]),
        payment_intent_id=m["payment_intent_id"],
        charge_id=m["charge_id"],
        refund_id=m["refund_id"],
        request_id=m["request_id"],
        created_at=m["created_at"],
        owner=m["owner"] or "",
    )


async def begin(
    db: AsyncConnection,
    *,
    account_id: str,
    key: str,
    endpoint: str,
    request_body: bytes,
    request_id: str | None,
    now: datetime,
    request_path: str | None = None,
) -> KeyRecord:
    """Claim `key` for this request, in the caller's transaction.

    Returns the record: fresh at STARTED, or an abandoned one to resume (under a new owner
    token), or a finished one to replay. Raises the 400 mismatch or the 409 in-use error.
    """
    values = _claim_values(account_id, key, endpoint, request_body, request_id, now, request_path)
    for _ in range(_CLAIM_TRIES):
        inserted = await _CLAIM.first(db, values)
        if inserted is not None:
            return _record(inserted)
        existing = await _LOCK.first(db, {"account_id": account_id, "key": key})
        if existing is not None:
            return await _claim_existing(db, values, existing, now=now)
        # The key's row was deleted (by the reaper, or a failed request's `forget`) between
        # the insert that met it and the lock: the key is unused again, and the insert may
        # now succeed.
    # The key keeps being made and deleted under this request: whatever uses it is still going.
    raise idempotency_in_use()


async def claim_new(
    db: Db,
    *,
    account_id: str,
    key: str,
    endpoint: str,
    request_body: bytes,
    request_id: str | None,
    now: datetime,
    request_path: str | None = None,
) -> KeyRecord | None:
    """Claim `key` if nobody ever used it: one INSERT, fit to run on its own (autocommit).
    None when the key exists; `begin` then decides, in a transaction, what that means."""
    values = _claim_values(account_id, key, endpoint, request_body, request_id, now, request_path)
    inserted = await _CLAIM.first(db, values)
    return None if inserted is None else _record(inserted)


def _claim_values(
    account_id: str,
    key: str,
    endpoint: str,
    request_body: bytes,
    request_id: str | None,
    now: datetime,
    request_path: str | None,
) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "key": key,
        "endpoint": endpoint,
        "request_digest": digest(endpoint, request_body),
        "request_body": request_body,
        "recovery_point": RecoveryPoint.STARTED.value,
        "locked_until": now + lease(),
        "request_id": request_id,
        "created_at": now,
        "last_run_at": now,
        "owner": secrets.token_hex(8),
        "request_path": request_path,
    }


async def _claim_existing(
    db: AsyncConnection, values: dict[str, Any], m: Mapping[str, Any], *, now: datetime
) -> KeyRecord:
    """The key exists (`m`, its row, locked): replay it, resume it, restart it if expired, or
    refuse the request."""
    account_id, key, endpoint = values["account_id"], values["key"], values["endpoint"]
    request_digest = values["request_digest"]
    row = m
    if life_began(m["created_at"], m["finished_at"]) < now - KEY_LIFETIME and _may_start_over(
        m, now
    ):
        # An expired key starts over as if it had never been used.
        await db.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.account_id == account_id, idempotency_keys.c.key == key)
            .values(
                **values,
                response_code=None,
                response_body=None,
                payment_intent_id=None,
                charge_id=None,
                refund_id=None,
                finished_at=None,
                **NO_TRIES,
            )
        )
        return _record(
            (
                await db.execute(
                    select(idempotency_keys).where(
                        idempotency_keys.c.account_id == account_id, idempotency_keys.c.key == key
                    )
                )
            ).one()
        )
    path, first_path = values["request_path"], m["request_path"]
    # The same RPC at another path is another endpoint too, to Stripe: a confirm of another
    # intent, a refund through `/v1/charges/ch_1/refunds` after one through `/v1/refunds`.
    other_path = path is not None and first_path is not None and path != first_path
    if m["endpoint"] != endpoint or other_path:
        raise idempotency_endpoint_mismatch(
            key,
            endpoint=endpoint,
            first_endpoint=m["endpoint"],
            path=path,
            first_path=first_path,
        )
    if bytes(m["request_digest"]) != request_digest:
        raise idempotency_mismatch(key)
    record = _record(row)
    if record.finished:
        return record
    if m["locked_until"] is not None and m["locked_until"] > now:
        raise idempotency_in_use()
    owner = secrets.token_hex(8)
    await db.execute(
        update(idempotency_keys)
        .where(idempotency_keys.c.account_id == account_id, idempotency_keys.c.key == key)
        .values(locked_until=now + lease(), last_run_at=now, owner=owner)
    )
    return replace(record, owner=owner)


def life_began(created_at: datetime, finished_at: datetime | None) -> datetime:
    """When a key's life (`KEY_LIFETIME`, `KEY_RETENTION`) began: when its request finished,
    if it did. A request may finish long after it began (held at a recovery point through an
    outage, finished by the completer or an operator); its client's retries must still find
    its answer, not start a second payment. Keys finished before the finish was recorded (or
    by a copy of remit that does not record it) have none: their life counts from their
    creation, as it used to."""
    return created_at if finished_at is None else max(created_at, finished_at)


def _may_start_over(row: Mapping[str, Any], now: datetime) -> bool:
    """Whether an expired key may be used afresh: only if its request is over (finished) or
    never sent anything anywhere (still at `started`, and nobody holds it). A request at a
    later point may have moved money at the network: starting over would make a second
    payment beside it, so its key is resumed like any other, however old."""
    point = RecoveryPoint(row["recovery_point"])
    if point is RecoveryPoint.FINISHED:
        return True
    lease_over = row["locked_until"] is None or row["locked_until"] <= now
    return point is RecoveryPoint.STARTED and lease_over


async def advance(
    db: AsyncConnection,
    record: KeyRecord,
    point: RecoveryPoint,
    *,
    now: datetime,
    payment_intent_id: str | None = None,
    charge_id: str | None = None,
    refund_id: str | None = None,
) -> KeyRecord:
    """Record a recovery point (and the objects made so far), renewing the lease."""
    await _ADVANCE.defer(
        db,
        {
            "recovery_point": point.value,
            "locked_until": now + lease(),
            "payment_intent_id": payment_intent_id,
            "charge_id": charge_id,
            "refund_id": refund_id,
            "account_id": record.account_id,
            "key": record.key,
            "owner": record.owner,
        },
    )
    return replace(
        record,
        recovery_point=point,
        payment_intent_id=payment_intent_id or record.payment_intent_id,
        charge_id=charge_id or record.charge_id,
        refund_id=refund_id or record.refund_id,
    )


async def relock(db: AsyncConnection, record: KeyRecord) -> KeyRecord:
    """Lock the key's row for the final transaction and return it as stored.

    If the lease ran out while this request waited on the network and another request (a
    retry, the completer) took over and finished, the stored row says so; the caller then
    replays instead of applying the outcome a second time.
    """
    row = await _LOCK.first(db, {"account_id": record.account_id, "key": record.key})
    return relocked(record, row)


async def stored(db: AsyncConnection, record: KeyRecord) -> KeyRecord | None:
    """The key's row as stored now, without locking it; None if it is gone."""
    return await find(db, record.account_id, record.key)


async def find(db: AsyncConnection, account_id: str, key: str) -> KeyRecord | None:
    """The key's row, without locking it; None if no request ever used it (or it was reaped)."""
    keys = idempotency_keys.c
    row = (
        await db.execute(
            select(idempotency_keys).where(keys.account_id == account_id, keys.key == key)
        )
    ).first()
    return None if row is None else _record(row)


def relocked(record: KeyRecord, row: Mapping[str, object] | None) -> KeyRecord:
    """The key's row as `relock` read it (by itself or in a larger statement), checked."""
    if row is None:
        # Only a key still at `started` is ever deleted while in use (`forget`, by the request
        # that took it over once this one's lease ran out, which then failed validation), so
        # nothing was done under it: the key is free again, and a retry starts afresh. Not a
        # 500, as if something had gone wrong with the payment.
        raise idempotency_in_use()
    stored = _record(dict(row))
    if not stored.finished and stored.owner != record.owner:
        # The lease ran out and another request took the key over; it carries on, not us.
        raise idempotency_in_use()
    return stored


async def finish(
    db: AsyncConnection,
    record: KeyRecord,
    *,
    response_code: int,
    response_body: bytes,
    now: datetime,
) -> None:
    """Store the response to replay; the key is done, and its life counts from `now`."""
    await _FINISH.defer(
        db,
        {
            "recovery_point": RecoveryPoint.FINISHED.value,
            "response_code": response_code,
            "response_body": response_body,
            "finished_at": now,
            "account_id": record.account_id,
            "key": record.key,
            "owner": record.owner,
        },
    )


async def release(db: AsyncConnection, record: KeyRecord) -> None:
    """Unlock without finishing: a retry may resume from the recorded point at once. Only
    the current claimant may release."""
    await _RELEASE.run(
        db, {"account_id": record.account_id, "key": record.key, "owner": record.owner}
    )


async def forget(db: AsyncConnection, record: KeyRecord) -> None:
    """Drop a key whose request failed validation: nothing happened, nothing is stored."""
    await db.execute(
        delete(idempotency_keys).where(
            idempotency_keys.c.account_id == record.account_id,
            idempotency_keys.c.key == record.key,
            idempotency_keys.c.recovery_point == RecoveryPoint.STARTED.value,
            idempotency_keys.c.owner == record.owner,
        )
    )


async def forget_held(db: AsyncConnection, record: KeyRecord) -> None:
    """Drop a key its holder has not finished, whatever point it recorded, for a request that
    failed validation having moved nothing although its key went past `started` before its
    work began: a review's close does so at once (`remit.radar.reviewing`), so that the
    completer finishes it rather than drop it. Only the current claimant may drop it."""
    await db.execute(
        delete(idempotency_keys).where(
            idempotency_keys.c.account_id == record.account_id,
            idempotency_keys.c.key == record.key,
            idempotency_keys.c.recovery_point != RecoveryPoint.FINISHED.value,
            idempotency_keys.c.owner == record.owner,
        )
    )


async def forget_refusal(db: AsyncConnection, record: KeyRecord) -> None:
    """Drop a key finished with a refusal that made nothing (no refund, charge or intent
    recorded under it), for a caller whose next try must be a request of its own rather than
    a replay: a review's close, whose refund or cancel runs under the review's key and which
    must not be kept from closing, nor an approval from going through, by a refusal such a
    key kept (`remit.radar.reviewing`). A key holding anything else is left alone."""
    await db.execute(
        delete(idempotency_keys).where(
            idempotency_keys.c.account_id == record.account_id,
            idempotency_keys.c.key == record.key,
            idempotency_keys.c.recovery_point == RecoveryPoint.FINISHED.value,
            idempotency_keys.c.response_code != 0,
            idempotency_keys.c.refund_id.is_(None),
            idempotency_keys.c.charge_id.is_(None),
            idempotency_keys.c.payment_intent_id.is_(None),
        )
    )


def abandoned_keys(*, now: datetime, limit: int) -> Select[Any]:
    """The completer's pick: unfinished keys nobody has worked on for a lease and whose backoff
    has run out, oldest try first (served by the partial index of unfinished keys, so finished
    ones are never read: the range on `last_run_at` comes from the index, the backoff is
    checked on the few unfinished rows it yields).

    The backoff: a key is tried again once as long has passed since its last run as it had
    lived by then, but at least a lease and at most `COMPLETER_MAX_GAP`. The gaps double (a
    lease, two, four...) up to the cap, so a key that keeps failing (a card that cannot be
    read, an acquirer down for days) is tried a few times in its first hour and then hourly,
    not every lease for ever. A key whose latest try met a limit of the database is not tried
    at all (`DATABASE_LIMIT_FAILURE`). Only the completer waits: a client's retry with the key
    takes it whenever no one holds it (`begin`)."""
    keys = idempotency_keys.c
    return (
        select(idempotency_keys)
        .where(
            # Written into the statement, not sent as a parameter: the driver prepares a
            # statement it runs often, and a plan made for any parameter could not use the
            # partial index, whose predicate this must match.
            keys.recovery_point != literal_column(f"'{RecoveryPoint.FINISHED.value}'"),
            keys.locked_until.is_(None) | (keys.locked_until < now),
            keys.last_run_at < now - lease(),
            (keys.last_run_at < now - COMPLETER_MAX_GAP)
            | (
                literal(now, DateTime(timezone=True)) - keys.last_run_at
                > keys.last_run_at - keys.created_at
            ),
            # An operator's now (its failure is recorded, and it stays held).
            keys.last_failure_code.is_distinct_from(literal_column(f"'{DATABASE_LIMIT_FAILURE}'")),
            # However old: a request past `started` may have moved money at the network, and
            # only finishing it brings that money to the intent and the ledger.
        )
        .order_by(keys.last_run_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


async def claim_abandoned(db: AsyncConnection, *, now: datetime, limit: int) -> list[KeyRecord]:
    """Take over unfinished keys nobody has worked on for a lease: requests that a crash or a
    vanished client left at a recovery point (waiting a lease gives a client retrying promptly
    the first go). Each comes back under a fresh lease. Its `last_run_at`, from which its
    backoff counts, is set only when its turn comes (`renew`): a completer stopped part-way
    through its batch has not tried the keys it never reached."""
    keys = idempotency_keys.c
    rows = (await db.execute(abandoned_keys(now=now, limit=limit))).all()
    claimed: list[KeyRecord] = []
    for row in rows:
        record = replace(_record(row), owner=secrets.token_hex(8))
        await db.execute(
            update(idempotency_keys)
            .where(keys.account_id == record.account_id, keys.key == record.key)
            .values(locked_until=now + lease(), owner=record.owner)
        )
        claimed.append(record)
    return claimed


async def renew(db: AsyncConnection, record: KeyRecord, *, now: datetime) -> bool:
    """A fresh lease on a key still held under `record`'s claim and unfinished; whether it was.
    The completer claims keys in batches and works through them in turn: each key's lease
    starts when its turn comes, not when the batch was claimed. It counts as one more of the
    completer's tries of the key (`remit held-requests` shows them)."""
    keys = idempotency_keys.c
    result = await db.execute(
        update(idempotency_keys)
        .where(
            keys.account_id == record.account_id,
            keys.key == record.key,
            keys.owner == record.owner,
            keys.recovery_point != RecoveryPoint.FINISHED.value,
        )
        .values(
            locked_until=now + lease(),
            last_run_at=now,
            completer_attempts=keys.completer_attempts + 1,
        )
    )
    return result.rowcount == 1


async def prolong(db: AsyncConnection, record: KeyRecord, *, now: datetime) -> bool:
    """A fresh lease on a key its request still holds under `record`'s claim, unfinished and
    not let go, while that request waits on the network (`remit.payments.key_heartbeat`);
    whether it still held it. Unlike `renew` it is no new try: the key's backoff and the
    completer's count of tries are left alone."""
    keys = idempotency_keys.c
    result = await db.execute(
        update(idempotency_keys)
        .where(
            keys.account_id == record.account_id,
            keys.key == record.key,
            keys.owner == record.owner,
            keys.recovery_point != RecoveryPoint.FINISHED.value,
            # Let go (`release`): a retry may take it at once, and nothing holds it again.
            keys.locked_until.is_not(None),
        )
        .values(locked_until=now + lease())
    )
    return result.rowcount == 1


@dataclass(frozen=True)
class Locked:
    """A key's row under its row lock, and until when a request holds it (None: nobody)."""

    record: KeyRecord
    locked_until: datetime | None

    def in_use(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now


async def lock(db: AsyncConnection, account_id: str, key: str) -> Locked | None:
    """The key's row, locked for the rest of the transaction; None if there is none."""
    row = await _LOCK.first(db, {"account_id": account_id, "key": key})
    return None if row is None else Locked(_record(row), row["locked_until"])


async def take_over(db: AsyncConnection, record: KeyRecord) -> KeyRecord:
    """Claim the locked, unfinished key of `record`, which nobody holds, under a fresh owner
    token, as the completer claims a key (`claim_abandoned`); `renew` then starts its try."""
    owner = secrets.token_hex(8)
    keys = idempotency_keys.c
    await db.execute(
        update(idempotency_keys)
        .where(keys.account_id == record.account_id, keys.key == record.key)
        .values(owner=owner)
    )
    return replace(record, owner=owner)


async def reap(db: AsyncConnection, *, now: datetime) -> int:
    """Delete keys older than the retention period whose request is over (finished) or never
    sent anything (at `started`, its lease run out). An unfinished key past `started` is kept
    however old: it is the only record of what its request may have done at the network, and
    the completer still has to finish it. A finished key's age counts from its finish
    (`life_began`), never before its creation: the range on `created_at` comes from its
    index, and the finish is checked on the rows it yields (those past retention are nearly
    all deleted; only the few finished late are read again on later runs)."""
    keys = idempotency_keys.c
    kept_from = now - KEY_RETENTION
    result = await db.execute(
        delete(idempotency_keys).where(
            keys.created_at < kept_from,
            keys.finished_at.is_(None) | (keys.finished_at < kept_from),
            (keys.recovery_point == RecoveryPoint.FINISHED.value)
            | (
                (keys.recovery_point == RecoveryPoint.STARTED.value)
                & (keys.locked_until.is_(None) | (keys.locked_until <= now))
            ),
        )
    )
    return int(result.rowcount)
