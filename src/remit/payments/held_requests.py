"""Requests held at a recovery point, as an operator sees them (`remit held-requests`).

A request that stops part-way (its client went away, the core died, the network did not
answer) waits at its recovery point until a retry with its key or the completer finishes it.
Most are finished within seconds. One that stays unfinished needs an operator: the acquirer
holds another operation under its reference (`lookup_expectations`), the acquirer has been out
of reach for long, or a bug fails it every time. The completer records on the key how often it
tried and why its latest try failed; this module stores that and lists the keys. A try that met a
limit of the database (SQLSTATE class 54) would meet it on every try: the completer tries such a
key no more, and it waits here for an operator (`idempotency.DATABASE_LIMIT_FAILURE`).

What is stored of a failure is never card data: an error code, remit's own message (a client's
error message, or for an exception of another kind its type and first line, masked as a log
line is), and for a record the acquirer holds otherwise than expected, the reference, the
acquirer's operation id and the names of the fields that differ. For an error that stands for
another to the client (`recording_failed`, a 500 to retry, for a ledger refusal once the network
has acted), that other one's code and message: "internal" would tell an operator nothing.

Listing changes nothing. A retry (`PaymentsService.retry_held`) is one more try of the
completer's, run at once: it finishes the request only with what the acquirer holds, exactly as
the completer would, and nothing here can mark a payment paid or failed by hand.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Final

from sqlalchemy import literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.errors import ErrorKind, RemitError, echoed, invalid
from remit.core.logging import mask_sensitive
from remit.payments.held_request_bounds import MAX_AGE, MAX_LIST_LIMIT
from remit.payments.idempotency import DATABASE_LIMIT_FAILURE, KeyRecord, Locked, RecoveryPoint
from remit.payments.lookup_expectations import NetworkRecordMismatchError
from remit.payments.tables import idempotency_keys
from remit.storage.driver_errors import DatabaseFault, database_fault

MISMATCH_CODE: Final = "network_record_mismatch"
# An exception that is no RemitError: a bug, or a failure of remit's own (its database).
EXCEPTION_CODE: Final = "exception"
_MESSAGE_LENGTH: Final = 500


@dataclass(frozen=True)
class Failure:
    """Why a try to finish a request failed."""

    at: datetime
    code: str
    message: str
    # For a record the acquirer holds otherwise than expected (`MISMATCH_CODE`).
    reference: str | None = None
    operation_id: str | None = None
    differing: tuple[str, ...] = ()


def _bounded(text: str) -> str:
    """One line, masked as a log line is, and short: an exception's text may quote anything."""
    line = " ".join(text.split())
    line = mask_sensitive(line)
    return line if len(line) <= _MESSAGE_LENGTH else line[: _MESSAGE_LENGTH - 3] + "..."


def _behind(error: BaseException) -> BaseException:
    """The refusal behind `error`: a RemitError raised from another stands for it to the
    client (a ledger refusal once the network has acted becomes `recording_failed`, a 500 to
    retry), and the one it was raised from says what an operator has to look at. So does a
    limit of the database behind it (`recording_over_a_limit`), which the completer must see
    to stop trying."""
    while isinstance(error, RemitError) and error.__cause__ is not None:
        cause = error.__cause__
        if (
            not isinstance(cause, RemitError)
            and database_fault(cause) is not DatabaseFault.OVER_LIMIT
        ):
            break
        error = cause
    return error


def failure_of(error: BaseException, at: datetime) -> Failure:
    """What is stored of `error`, which failed a try at `at`. A limit of the database that it
    met is stored as `DATABASE_LIMIT_FAILURE`, which the completer tries no more."""
    error = _behind(error)
    if isinstance(error, NetworkRecordMismatchError):
        fields = ", ".join(error.differing)
        differ = "differs" if len(error.differing) == 1 else "differ"
        return Failure(
            at=at,
            code=MISMATCH_CODE,
            message=(
                f"the acquirer holds operation {error.operation_id} under {error.reference}, "
                f"which is not the operation this request sent: {fields} {differ}; nothing "
                "was applied"
            ),
            reference=error.reference,
            operation_id=error.operation_id,
            differing=error.differing,
        )
    if isinstance(error, RemitError):
        return Failure(at=at, code=error.code or error.kind.value, message=_bounded(error.message))
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    described = f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__
    if database_fault(error) is DatabaseFault.OVER_LIMIT:
        return Failure(
            at=at,
            code=DATABASE_LIMIT_FAILURE,
            message=_bounded(
                f"{described}: past a limit of the database, which every try meets the same "
                "way, so the completer no longer tries it; once the cause is dealt with, "
                "remit held-requests retry tries it again"
            ),
        )
    return Failure(at=at, code=EXCEPTION_CODE, message=_bounded(described))


async def note_failure(db: AsyncConnection, record: KeyRecord, failure: Failure) -> None:
    """Record `failure` as the latest of `record`'s key, unless a retry finished it meanwhile
    (then nothing is held, and nothing is written)."""
    keys = idempotency_keys.c
    await db.execute(
        update(idempotency_keys)
        .where(
            keys.account_id == record.account_id,
            keys.key == record.key,
            keys.recovery_point != RecoveryPoint.FINISHED.value,
        )
        .values(
            last_failure_at=failure.at,
            last_failure_code=failure.code,
            last_failure_message=failure.message,
            last_failure_reference=failure.reference,
            last_failure_operation=failure.operation_id,
            last_failure_fields=list(failure.differing) if failure.differing else None,
        )
    )


@dataclass(frozen=True)
class HeldRequest:
    account_id: str
    key: str
    endpoint: str
    recovery_point: RecoveryPoint
    created_at: datetime
    # The id of the request that began it, if it came with one: what names a request sent
    # without an idempotency key, whose key remit made up (`remit.payments.keyed_rpc`).
    request_id: str | None
    # The last time a request (the first, a retry, the completer) took it up.
    last_run_at: datetime
    # Whether a request holds it now (a client's retry, the completer).
    in_progress: bool
    payment_intent_id: str | None
    charge_id: str | None
    refund_id: str | None
    completer_attempts: int
    last_failure: Failure | None


def _held(row: Any, now: datetime) -> HeldRequest:
    failure = None
    if row.last_failure_at is not None:
        failure = Failure(
            at=row.last_failure_at,
            code=row.last_failure_code or "",
            message=row.last_failure_message or "",
            reference=row.last_failure_reference,
            operation_id=row.last_failure_operation,
            differing=tuple(row.last_failure_fields or ()),
        )
    return HeldRequest(
        account_id=row.account_id,
        key=row.key,
        endpoint=row.endpoint,
        recovery_point=RecoveryPoint(row.recovery_point),
        created_at=row.created_at,
        request_id=row.request_id,
        last_run_at=row.last_run_at,
        in_progress=row.locked_until is not None and row.locked_until > now,
        payment_intent_id=row.payment_intent_id,
        charge_id=row.charge_id,
        refund_id=row.refund_id,
        completer_attempts=row.completer_attempts,
        last_failure=failure,
    )


def check_list_params(*, older_than: timedelta, limit: int) -> None:
    if not timedelta(0) <= older_than <= MAX_AGE:
        raise invalid(
            f"older_than must be between 0 and {int(MAX_AGE.total_seconds())} seconds.",
            "older_than",
        )
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise invalid(f"limit must be between 1 and {MAX_LIST_LIMIT}.", "limit")


_COLUMNS = (
    idempotency_keys.c.account_id,
    idempotency_keys.c.key,
    idempotency_keys.c.endpoint,
    idempotency_keys.c.recovery_point,
    idempotency_keys.c.created_at,
    idempotency_keys.c.request_id,
    idempotency_keys.c.last_run_at,
    idempotency_keys.c.locked_until,
    idempotency_keys.c.payment_intent_id,
    idempotency_keys.c.charge_id,
    idempotency_keys.c.refund_id,
    idempotency_keys.c.completer_attempts,
    idempotency_keys.c.last_failure_at,
    idempotency_keys.c.last_failure_code,
    idempotency_keys.c.last_failure_message,
    idempotency_keys.c.last_failure_reference,
    idempotency_keys.c.last_failure_operation,
    idempotency_keys.c.last_failure_fields,
)


async def held_requests(
    db: AsyncConnection,
    *,
    now: datetime,
    older_than: timedelta,
    account_id: str | None,
    limit: int,
) -> tuple[list[HeldRequest], bool]:
    """The unfinished keys begun at least `older_than` before `now`, the oldest first, at most
    `limit` of them, and whether there are more. A read only: it takes no lock."""
    check_list_params(older_than=older_than, limit=limit)
    keys = idempotency_keys.c
    query = (
        select(*_COLUMNS)
        .where(
            # Written into the statement, as the completer's claim writes it, so that the
            # partial index of unfinished keys serves it and no finished key is read.
            keys.recovery_point != literal_column(f"'{RecoveryPoint.FINISHED.value}'"),
            keys.created_at <= now - older_than,
        )
        .order_by(keys.created_at, keys.account_id, keys.key)
        .limit(limit + 1)
    )
    if account_id is not None:
        query = query.where(keys.account_id == account_id)
    rows = list(await db.execute(query))
    return [_held(row, now) for row in rows[:limit]], len(rows) > limit


async def held_request(
    db: AsyncConnection, account_id: str, key: str, *, now: datetime
) -> HeldRequest | None:
    """The key as `held_requests` shows it, finished or not; None if there is none."""
    keys = idempotency_keys.c
    row = (
        await db.execute(select(*_COLUMNS).where(keys.account_id == account_id, keys.key == key))
    ).first()
    return None if row is None else _held(row, now)


def no_such_request(account_id: str, key: str) -> RemitError:
    return RemitError(
        message=f"No request of {echoed(account_id)} holds the key '{echoed(key)}'.",
        kind=ErrorKind.NOT_FOUND,
        code="resource_missing",
        param="idempotency_key",
    )


def retryable(locked: Locked | None, account_id: str, key: str, now: datetime) -> KeyRecord:
    """The key an operator asks to retry, unless it is not held: unknown or finished, which are
    refused, or being worked on right now by a request (a client's retry, the completer), which
    is not to be disturbed: refused for now, as a key in use is (CONFLICT, to be retried), since
    the same retry may well go through once that try is over."""
    if locked is None:
        raise no_such_request(account_id, key)
    if locked.record.finished:
        raise RemitError(
            message=f"The request under '{echoed(key)}' is finished; there is nothing to retry.",
            kind=ErrorKind.FAILED_PRECONDITION,
            code="request_finished",
        )
    if locked.in_use(now):
        raise RemitError(
            message=(
                f"The request under '{echoed(key)}' is being worked on right now (a retry by "
                "its client, or the completer); look again once its try is over."
            ),
            kind=ErrorKind.CONFLICT,
            code="request_in_progress",
            should_retry=True,
        )
    return locked.record


class RetryOutcome(Enum):
    # The try finished the request: its answer is stored for its client's retry to replay.
    FINISHED = "finished"
    # It failed again (its failure is recorded); the completer goes on trying, unless it met a
    # limit of the database (`DATABASE_LIMIT_FAILURE`).
    STILL_HELD = "still_held"
    # It had never got past `started`: nothing was sent anywhere, and its key was dropped, as
    # the completer drops such a key, so that its client's retry starts afresh.
    DROPPED = "dropped"


@dataclass(frozen=True)
class Retried:
    outcome: RetryOutcome
    # The request after the try; None once dropped.
    request: HeldRequest | None
