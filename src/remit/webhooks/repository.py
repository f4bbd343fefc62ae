"""Webhook persistence inside the caller's transaction; every account-facing query names the
account."""

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.accounts.tables import accounts
from remit.storage import fastsql
from remit.storage.answer_budget import fetch_within
from remit.storage.fastsql import Statement
from remit.webhooks.domain import (
    FAILING_ENDPOINT_DISABLE_AFTER,
    FAILURE_RUN_BREAK,
    MAX_HONOURED_RATE_LIMITS,
    ON_TIME_SCHEDULE_SPAN,
    SUCCESS_NOTED_WITHIN,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    DisabledReason,
    EndpointStatus,
    Event,
    NewAttempt,
    RolledSecret,
    WebhookEndpoint,
)
from remit.webhooks.event_types import ALL_EVENTS
from remit.webhooks.tables import (
    events,
    webhook_deliveries,
    webhook_delivery_attempts,
    webhook_endpoints,
    webhook_inflight,
)


@dataclass(frozen=True)
class Cursor:
    """A page boundary: the (time, id) of the object named by starting_after/ending_before;
    the objects of one time are ordered by `tie`."""

    at: datetime
    id: str

    @property
    def tie(self) -> str | int:
        """What orders the objects of one `at` among themselves: their id."""
        return self.id


@dataclass(frozen=True)
class EventCursor(Cursor):
    """An event's place in the order events are listed, streamed and redelivered in: when it
    was recorded, then, among the events of one instant (the events of one transaction share
    it), the order they were recorded in (`seq`, core migration 0087), not their random ids."""

    seq: int

    @property
    def tie(self) -> int:
        return self.seq


# Where a stream reads from to go back to an instant: before every event recorded at it (the
# sequence's numbers start at 1).
BEFORE_EVERY_SEQ = 0


@dataclass(frozen=True)
class Page:
    limit: int
    starting_after: Cursor | None = None
    ending_before: Cursor | None = None


@dataclass(frozen=True)
class TimeRange:
    gt: datetime | None = None
    gte: datetime | None = None
    lt: datetime | None = None
    lte: datetime | None = None

    def conditions(self, column: Any) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        for bound, op in ((self.gt, "__gt__"), (self.gte, "__ge__"), (self.lt, "__lt__"),
                          (self.lte, "__le__")):  # fmt: skip
            if bound is not None:
                out.append(getattr(column, op)(bound))
        return out


async def _paged(
    db: AsyncConnection,
    query: Select[Any],
    conditions: list[ColumnElement[bool]],
    at_column: Any,
    tie_column: Any,
    page: Page,
) -> tuple[list[Row[Any]], bool]:
    """Newest first; the rows of one page and whether more lie beyond it in that direction: at
    most `page.limit`, fewer when they would take an answer past its budget
    (remit.storage.answer_budget). `tie_column` orders the rows of one time, as the cursors'
    `tie` does."""
    if page.starting_after is not None:
        at, tie = page.starting_after.at, page.starting_after.tie
        older = or_(at_column < at, and_(at_column == at, tie_column < tie))
        conditions = [*conditions, older]
    elif page.ending_before is not None:
        at, tie = page.ending_before.at, page.ending_before.tie
        newer = or_(at_column > at, and_(at_column == at, tie_column > tie))
        conditions = [*conditions, newer]
    backwards = page.starting_after is None and page.ending_before is not None
    rows, has_more = await fetch_within(
        db,
        query.where(*conditions),
        (at_column, tie_column),
        descending=not backwards,
        limit=page.limit,
    )
    if backwards:
        rows.reverse()
    return rows, has_more


# --- endpoints ------------------------------------------------------------------------------


def endpoint_from_row(row: Row[Any]) -> WebhookEndpoint:
    return endpoint_from_mapping(row._mapping)


def endpoint_from_mapping(m: Mapping[Any, Any]) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=m["id"],
        account_id=m["account_id"],
        url=m["url"],
        enabled_events=tuple(m["enabled_events"]),
        api_version=m["api_version"],
        description=m["description"],
        metadata=dict(m["metadata"]),
        status=EndpointStatus(m["status"]),
        disabled_reason=None
        if m["disabled_reason"] is None
        else DisabledReason(m["disabled_reason"]),
        secret=m["secret"],
        rolled_secrets=rolled_secrets_from_json(m["rolled_secrets"]),
        failing_since=m["failing_since"],
        rate_limited_until=m["rate_limited_until"],
        created_at=m["created_at"],
    )


def rolled_secrets_from_json(stored: Sequence[Mapping[str, str]]) -> tuple[RolledSecret, ...]:
    return tuple(
        RolledSecret(old["secret"], datetime.fromisoformat(old["expires_at"])) for old in stored
    )


def rolled_secrets_to_json(rolled: Sequence[RolledSecret]) -> list[dict[str, str]]:
    return [{"secret": old.secret, "expires_at": old.expires_at.isoformat()} for old in rolled]


def _endpoint_values(endpoint: WebhookEndpoint) -> dict[str, object]:
    return {
        "url": endpoint.url,
        "enabled_events": list(endpoint.enabled_events),
        "api_version": endpoint.api_version,
        "description": endpoint.description,
        "metadata": dict(endpoint.metadata),
        "status": endpoint.status.value,
        "disabled_reason": None
        if endpoint.disabled_reason is None
        else endpoint.disabled_reason.value,
        "secret": endpoint.secret,
        "rolled_secrets": rolled_secrets_to_json(endpoint.rolled_secrets),
        "failing_since": endpoint.failing_since,
        "rate_limited_until": endpoint.rate_limited_until,
    }


# What a success changes on its endpoint's row, if anything (see
# `EndpointRepository.note_success`): the WHERE clause leaves the row alone, unwritten and
# unlocked, when nothing on it must change.
_NOTE_SUCCESS = Statement(
    "UPDATE webhook_endpoints SET"
    " last_succeeded_at = greatest(coalesce(last_succeeded_at, %(attempted_at)s),"
    " %(attempted_at)s),"
    # The endpoint takes deliveries again: its 429 allowance is whole again.
    " rate_limits_honoured = 0,"
    " failing_since = CASE"
    " WHEN failing_since > %(attempted_at)s THEN failing_since"
    " WHEN failing_since IS NOT NULL AND last_failed_at > %(attempted_at)s THEN last_failed_at"
    " ELSE NULL END"
    " WHERE id = %(endpoint_id)s"
    " AND (failing_since IS NOT NULL OR rate_limits_honoured <> 0"
    " OR last_succeeded_at IS NULL OR last_succeeded_at <= %(noted_before)s)"
)


def _ends_a_lone_run(last_attempt_of: int | None, now: datetime) -> ColumnElement[bool]:
    """The condition under which a delivery's last attempt disables its endpoint (see
    `EndpointRepository.note_failure`)."""
    if last_attempt_of is None:
        return false()
    c, d = webhook_endpoints.c, webhook_deliveries.c
    others_pending = exists().where(
        d.endpoint_id == c.id,
        d.status == DeliveryStatus.PENDING.value,
        d.id != last_attempt_of,
    )
    return and_(c.failing_since <= now - ON_TIME_SCHEDULE_SPAN, ~others_pending)


class EndpointRepository:
    def __init__(self, db: AsyncConnection) -> None:
        self._db = db

    async def insert(self, endpoint: WebhookEndpoint) -> None:
        await self._db.execute(
            webhook_endpoints.insert().values(
                id=endpoint.id,
                account_id=endpoint.account_id,
                created_at=endpoint.created_at,
                **_endpoint_values(endpoint),
            )
        )

    async def count_locked(self, account_id: str) -> int:
        """How many endpoints the account has (deleted ones aside), counted under the lock
        on the account's row that every creation of an endpoint takes first and holds to its
        commit: two creations at once count one after the other, each seeing the other's
        endpoint, so neither passes a cap the other filled. FOR NO KEY UPDATE, as a change of
        the account's settings locks it: the key-share locks that inserts referencing the
        account take (its payments', its events') do not wait for it. The count is a
        statement of its own, after the lock's: its snapshot is taken once the lock is
        granted, and sees what the creation waited for."""
        await self._db.execute(
            select(accounts.c.id).where(accounts.c.id == account_id).with_for_update(key_share=True)
        )
        c = webhook_endpoints.c
        counted = await self._db.execute(
            select(func.count())
            .select_from(webhook_endpoints)
            .where(c.account_id == account_id, c.deleted_at.is_(None))
        )
        return int(counted.scalar_one())

    async def get(
        self, account_id: str, endpoint_id: str, *, for_update: bool = False
    ) -> WebhookEndpoint | None:
        c = webhook_endpoints.c
        query = select(webhook_endpoints).where(
            c.account_id == account_id, c.id == endpoint_id, c.deleted_at.is_(None)
        )
        if for_update:
            query = query.with_for_update()
        row = (await self._db.execute(query)).first()
        return None if row is None else endpoint_from_row(row)

    async def save(self, endpoint: WebhookEndpoint) -> None:
        await self._db.execute(
            update(webhook_endpoints)
            .where(webhook_endpoints.c.id == endpoint.id)
            .values(**_endpoint_values(endpoint))
        )

    async def delete(self, account_id: str, endpoint_id: str, at: datetime) -> bool:
        c = webhook_endpoints.c
        result = await self._db.execute(
            update(webhook_endpoints)
            .where(c.account_id == account_id, c.id == endpoint_id, c.deleted_at.is_(None))
            .values(deleted_at=at)
        )
        return result.rowcount == 1

    async def note_success(self, endpoint_id: str, attempted_at: datetime) -> None:
        """A success ends the run of failures made before it. Attempts are recorded in the
        order their POSTs end, not the order they were made, so the run is kept by attempt
        time: failures made after this success (recorded first) still count, from the latest
        of them, the one the row knows; that can postpone disabling, never hasten it.

        The row is written only when something must change: a run to end, 429s honoured to
        give back, or no success on record made within SUCCESS_NOTED_WITHIN before this one.
        On a busy endpoint nearly every success then writes nothing and takes no lock. Why the
        rule "a failure made before the latest success starts no run" still holds:

        - `last_succeeded_at` (L) only grows, and after every success S made at s is recorded,
          L > s - SUCCESS_NOTED_WITHIN: S either wrote L = max(L, s) or found it so already.
        - `note_failure` takes a failure made at f to be ended by a success when
          L > f - SUCCESS_NOTED_WITHIN, so every failure made at or before s (f <= s) is.
        - The condition is evaluated by the UPDATE itself, on the row's latest committed
          version, not on what the caller read before its POST. A failure recorded since
          (a run started, an allowance taken) makes it write. If a failure F is being
          recorded at the same moment, uncommitted: either the version S's statement sees
          matches (S waits for F's lock, evaluates F's committed row again and writes if it
          still matches), or it does not match and S skips, and then F, which holds
          the row's lock, read the same version or a later one, whose L already ends F if F
          was made before S. Skipping also leaves any 429 F takes counted, as if F had been
          recorded after S.

        A failure made less than SUCCESS_NOTED_WITHIN after the success on record starts no
        run either: the run starts at the next failure, later, which postpones disabling and
        never hastens it.

        Deferred (`remit.storage.fastsql`): in a `deferring` block it goes out with the next
        statement that needs an answer."""
        await _NOTE_SUCCESS.defer(
            self._db,
            {
                "endpoint_id": endpoint_id,
                "attempted_at": attempted_at,
                "noted_before": attempted_at - SUCCESS_NOTED_WITHIN,
            },
        )

    async def note_failure(
        self,
        endpoint_id: str,
        attempted_at: datetime,
        now: datetime,
        *,
        last_attempt_of: int | None = None,
    ) -> bool:
        """Start (or continue) the endpoint's run of failures; disable it once that run has
        lasted three days. A failure after a silence longer than FAILURE_RUN_BREAK starts a
        new run; a failure made before a success already recorded belongs to no run (that
        success ended it). Returns True when this call disabled it.

        `last_attempt_of` names the delivery this failure gave up on (its schedule has no
        retry left). A lone delivery's retries span no more than its three-day window, so a run
        it makes alone never reaches three days, and the next delivery, a silence later, starts
        a run afresh: its last attempt therefore disables the endpoint once the run has lasted
        ON_TIME_SCHEDULE_SPAN (its whole schedule, made on time), if no other delivery of the
        endpoint is pending to carry the run on to the three days. Of concurrent last attempts,
        the one that takes the endpoint's row last sees the others' deliveries finished.

        One UPDATE: it waits for a concurrent success's write, if that writes, and reads the
        row it committed."""
        c = webhook_endpoints.c
        # Ended by the latest success, which may have been made up to SUCCESS_NOTED_WITHIN after
        # the one the row holds (see `note_success`).
        ended = c.last_succeeded_at > attempted_at - SUCCESS_NOTED_WITHIN
        continues = (c.failing_since.is_not(None)) & (
            c.last_failed_at >= attempted_at - FAILURE_RUN_BREAK
        )
        await self._db.execute(
            update(webhook_endpoints)
            .where(c.id == endpoint_id)
            .values(
                failing_since=case(
                    (ended, c.failing_since),
                    (continues, func.least(c.failing_since, attempted_at)),
                    else_=attempted_at,
                ),
                last_failed_at=func.greatest(
                    func.coalesce(c.last_failed_at, attempted_at), attempted_at
                ),
            )
        )
        result = await self._db.execute(
            update(webhook_endpoints)
            .where(
                c.id == endpoint_id,
                c.status == EndpointStatus.ENABLED.value,
                # A deleted endpoint is disabled by nothing: an attempt in flight as it was
                # deleted would otherwise say it disabled an endpoint that is gone.
                c.deleted_at.is_(None),
                or_(
                    c.failing_since <= now - FAILING_ENDPOINT_DISABLE_AFTER,
                    _ends_a_lone_run(last_attempt_of, now),
                ),
            )
            .values(
                status=EndpointStatus.DISABLED.value, disabled_reason=DisabledReason.FAILING.value
            )
        )
        return result.rowcount == 1

    async def start_afresh(self, endpoint_id: str) -> None:
        """An endpoint enabled again (by its owner, after they mended it) starts with no history:
        no run of failures (`failing_since`, `last_failed_at`), so the next failure starts one
        rather than disable it again at once on the strength of the run that disabled it; no
        pause asked for; and its whole allowance of honoured 429s, which only a 2xx gives back
        otherwise and which an endpoint disabled while failing never got."""
        await self._db.execute(
            update(webhook_endpoints)
            .where(webhook_endpoints.c.id == endpoint_id)
            .values(
                failing_since=None,
                last_failed_at=None,
                rate_limited_until=None,
                rate_limits_honoured=0,
            )
        )

    async def take_honoured_rate_limit(self, endpoint_id: str) -> bool:
        """Count one more 429 honoured since the endpoint last answered 2xx, if it has fewer
        than MAX_HONOURED_RATE_LIMITS: all its deliveries share them, so many pending ones do
        not each get their own. False: this 429 is an ordinary failure."""
        c = webhook_endpoints.c
        result = await self._db.execute(
            update(webhook_endpoints)
            .where(c.id == endpoint_id, c.rate_limits_honoured < MAX_HONOURED_RATE_LIMITS)
            .values(rate_limits_honoured=c.rate_limits_honoured + 1)
        )
        return result.rowcount == 1

    async def disable(self, endpoint_id: str, reason: DisabledReason) -> bool:
        """Disable the endpoint if it is enabled (and not deleted); True if this call did."""
        c = webhook_endpoints.c
        result = await self._db.execute(
            update(webhook_endpoints)
            .where(
                c.id == endpoint_id,
                c.status == EndpointStatus.ENABLED.value,
                c.deleted_at.is_(None),
            )
            .values(status=EndpointStatus.DISABLED.value, disabled_reason=reason.value)
        )
        return result.rowcount == 1

    async def rate_limit_until(self, endpoint_id: str, until: datetime) -> None:
        await self._db.execute(
            update(webhook_endpoints)
            .where(webhook_endpoints.c.id == endpoint_id)
            .values(rate_limited_until=until)
        )

    async def cursor(self, account_id: str, endpoint_id: str) -> Cursor | None:
        endpoint = await self.get(account_id, endpoint_id)
        return None if endpoint is None else Cursor(endpoint.created_at, endpoint.id)

    async def list(self, account_id: str, page: Page) -> tuple[list[WebhookEndpoint], bool]:
        c = webhook_endpoints.c
        rows, has_more = await _paged(
            self._db,
            select(webhook_endpoints),
            [c.account_id == account_id, c.deleted_at.is_(None)],
            c.created_at,
            c.id,
            page,
        )
        return [endpoint_from_row(row) for row in rows], has_more


# --- events ---------------------------------------------------------------------------------


# An alias, so the pending count's subquery never correlates with webhook_deliveries in the
# outer query.
_PENDING_DELIVERIES = webhook_deliveries.alias("pending_deliveries")


# An event's `pending_webhooks`: Stripe's "webhooks that have yet to be successfully delivered
# to the URLs you've specified", read as the deliveries still on their way, those something will
# attempt again by itself. A succeeded delivery is done; a failed one (retries used up, a 410,
# given up, its endpoint deleted, or its job found the endpoint disabled) will be attempted
# again only if asked (a resend or a redelivery). A pending delivery of a disabled endpoint that
# has no job counts: its endpoint is still one of the URLs specified, it has not been delivered,
# and it is attempted once the endpoint is enabled again (the repair stages its job then,
# `remit.webhooks.repair`). It stops counting when it is delivered, or when it fails: deleting
# the endpoint fails it (`remit.webhooks.deleted`).
def _pending_count(event_id_column: Any) -> Any:
    d = _PENDING_DELIVERIES.c
    return (
        select(func.count())
        .where(d.event_id == event_id_column, d.status == DeliveryStatus.PENDING.value)
        .scalar_subquery()
        .label("pending_webhooks")
    )


def event_from_row(row: Row[Any]) -> Event:
    m = row._mapping
    return Event(
        id=m["id"],
        account_id=m["account_id"],
        type=m["type"],
        created_at=m["created_at"],
        livemode=m["livemode"],
        data_object=m["data_object"],
        previous_attributes=m["previous_attributes"],
        request_id=m["request_id"],
        idempotency_key=m["idempotency_key"],
        pending_webhooks=int(m.get("pending_webhooks") or 0),
        api_version=m["api_version"],
    )


@dataclass(frozen=True)
class EventFilter:
    types: Sequence[str] = ()  # exact types, `family.*`, or "*" for all
    created: TimeRange = TimeRange()
    delivery_success: bool | None = None


class EventRepository:
    def __init__(self, db: AsyncConnection) -> None:
        self._db = db

    async def insert(self, event: Event) -> None:
        await self._db.execute(
            events.insert().values(
                id=event.id,
                account_id=event.account_id,
                type=event.type,
                created_at=event.created_at,
                livemode=event.livemode,
                data_object=event.data_object,
                previous_attributes=event.previous_attributes,
                request_id=event.request_id,
                idempotency_key=event.idempotency_key,
            )
        )

    async def get(self, account_id: str, event_id: str) -> Event | None:
        c = events.c
        row = (
            await self._db.execute(
                select(events, _pending_count(c.id)).where(
                    c.account_id == account_id, c.id == event_id
                )
            )
        ).first()
        return None if row is None else event_from_row(row)

    async def cursor(self, account_id: str, event_id: str) -> EventCursor | None:
        c = events.c
        row = (
            await self._db.execute(
                select(c.created_at, c.id, c.seq).where(
                    c.account_id == account_id, c.id == event_id
                )
            )
        ).first()
        return None if row is None else EventCursor(row.created_at, row.id, row.seq)

    async def newest(self, account_id: str) -> EventCursor | None:
        """The place of the account's newest event (None: it has none)."""
        c = events.c
        row = (
            await self._db.execute(
                select(c.created_at, c.id, c.seq)
                .where(c.account_id == account_id)
                .order_by(c.created_at.desc(), c.seq.desc())
                .limit(1)
            )
        ).first()
        return None if row is None else EventCursor(row.created_at, row.id, row.seq)

    def _conditions(self, account_id: str, where: EventFilter) -> list[ColumnElement[bool]]:
        c = events.c
        conditions = [c.account_id == account_id, *where.created.conditions(c.created_at)]
        # "*" selects every type, alone or among others (as `filter_matches` has it).
        if where.types and ALL_EVENTS not in where.types:
            exact = [t for t in where.types if not t.endswith(".*")]
            families = [t[:-1] for t in where.types if t.endswith(".*")]
            alternatives: list[ColumnElement[bool]] = []
            if exact:
                alternatives.append(c.type.in_(exact))
            alternatives += [c.type.startswith(prefix, autoescape=True) for prefix in families]
            conditions.append(or_(*alternatives))
        if where.delivery_success is not None:
            d = webhook_deliveries.c
            unsuccessful = (
                select(literal(1))
                .where(d.event_id == c.id, d.status != DeliveryStatus.SUCCEEDED.value)
                .exists()
            )
            conditions.append(~unsuccessful if where.delivery_success else unsuccessful)
        return conditions

    async def list(
        self, account_id: str, where: EventFilter, page: Page
    ) -> tuple[list[Event], bool]:
        c = events.c
        rows, has_more = await _paged(
            self._db,
            select(events, _pending_count(c.id)),
            self._conditions(account_id, where),
            c.created_at,
            c.seq,
            page,
        )
        return [event_from_row(row) for row in rows], has_more

    async def after(
        self, account_id: str, cursor: EventCursor | None, limit: int
    ) -> tuple[builtins.list[Event], EventCursor | None]:
        """Events newer than `cursor`, oldest first (for streaming), and the place of the last
        of them (None: there are none), from which the next read goes on."""
        c = events.c
        conditions = [c.account_id == account_id]
        if cursor is not None:
            conditions.append(_after(cursor))
        rows = (
            await self._db.execute(
                select(events, _pending_count(c.id))
                .where(*conditions)
                .order_by(c.created_at.asc(), c.seq.asc())
                .limit(limit)
            )
        ).all()
        last = None if not rows else EventCursor(rows[-1].created_at, rows[-1].id, rows[-1].seq)
        return [event_from_row(row) for row in rows], last

    async def delete_older_than(self, cutoff: datetime, *, batch: int) -> int:
        c = events.c
        doomed = select(c.id).where(c.created_at < cutoff).limit(batch).scalar_subquery()
        result = await self._db.execute(events.delete().where(c.id.in_(doomed)))
        return int(result.rowcount)


def _after(cursor: EventCursor) -> ColumnElement[bool]:
    """The events recorded after the one at `cursor`."""
    c = events.c
    return or_(c.created_at > cursor.at, and_(c.created_at == cursor.at, c.seq > cursor.seq))


# --- deliveries and attempts ----------------------------------------------------------------


def delivery_from_row(row: Row[Any]) -> Delivery:
    m = row._mapping
    return Delivery(
        id=m["id"],
        account_id=m["account_id"],
        event_id=m["event_id"],
        endpoint_id=m["endpoint_id"],
        status=DeliveryStatus(m["status"]),
        attempts=m["attempts"],
        retry_step=m["retry_step"],
        first_attempt_at=m["first_attempt_at"],
        next_attempt_at=m["next_attempt_at"],
        generation=m["generation"],
    )


def attempt_from_row(row: Row[Any]) -> DeliveryAttempt:
    m = row._mapping
    return DeliveryAttempt(
        id=m["id"],
        delivery_id=m["delivery_id"],
        event_id=m["event_id"],
        endpoint_id=m["endpoint_id"],
        attempted_at=m["attempted_at"],
        http_status=m["http_status"],
        latency_ms=m["latency_ms"],
        response_snippet=m["response_snippet"],
        error=m["error"],
        next_retry_at=m["next_retry_at"],
        attempt_number=m["attempt_number"],
        succeeded=m["succeeded"],
    )


@dataclass(frozen=True)
class DeliveryContext:
    """Everything one attempt needs, read in one query."""

    delivery: Delivery
    event: Event
    endpoint: WebhookEndpoint
    endpoint_deleted: bool
    account_api_version: str | None


# The delivery's row, locked by whatever records an attempt of it (the worker's, a resend's),
# to the end of its transaction: the attempt is numbered under it. FOR NO KEY UPDATE, as the
# UPDATE moving the delivery on locks it: an attempt being inserted (its key-share lock on the
# delivery) is not waited for.
_LOCK_DELIVERY = Statement(
    "SELECT 1 FROM webhook_deliveries WHERE id = %(delivery_id)s FOR NO KEY UPDATE"
)
# The attempt, numbered after every attempt of its delivery stored before it. Read in the
# statement's own snapshot, taken once the delivery's lock (`_LOCK_DELIVERY`, a statement
# before) was granted: every attempt recorded under that lock before has committed, and is
# counted. The unique index on (delivery_id, attempt_number) refuses any other way of taking a
# number twice (core migration 0076).
_INSERT_NUMBERED_ATTEMPT = Statement(
    "INSERT INTO webhook_delivery_attempts (id, delivery_id, account_id, event_id, endpoint_id,"
    " attempted_at, http_status, latency_ms, response_snippet, error, next_retry_at,"
    " attempt_number, succeeded)"
    " VALUES (%(id)s, %(delivery_id)s, %(account_id)s, %(event_id)s, %(endpoint_id)s,"
    " %(attempted_at)s, %(http_status)s, %(latency_ms)s, %(response_snippet)s, %(error)s,"
    " %(next_retry_at)s,"
    " (SELECT coalesce(max(attempt_number), 0) + 1 FROM webhook_delivery_attempts"
    " WHERE delivery_id = %(delivery_id)s),"
    " %(succeeded)s)"
    " RETURNING attempt_number"
)
_UNPARK = Statement("DELETE FROM webhook_parked WHERE delivery_id = %(delivery_id)s")
# The retry times the delivery's attempts show that no attempt of the worker's has reached: each
# attempt the worker made was made at or after the time shown before it, so a time after the
# latest of them (`last_attempt_at`) names a retry still to come, which a delivery that ends now
# never makes.
_FORGET_RETRIES_TO_COME = Statement(
    "UPDATE webhook_delivery_attempts AS attempt SET next_retry_at = NULL"
    " FROM webhook_deliveries AS delivery"
    " WHERE attempt.delivery_id = %(delivery_id)s AND delivery.id = %(delivery_id)s"
    " AND attempt.next_retry_at > coalesce(delivery.last_attempt_at, '-infinity')"
)
_RECORD_ATTEMPT_RESULT = Statement(
    "UPDATE webhook_deliveries SET attempts = %(attempts)s, retry_step = %(retry_step)s,"
    " status = %(status)s, last_attempt_at = %(attempted_at)s,"
    " next_attempt_at = %(next_attempt_at)s, finished_at = %(finished_at)s"
    " WHERE id = %(delivery_id)s AND attempts = %(previous_attempts)s AND status = 'pending'"
    " AND generation = %(generation)s"
)


def _context_query() -> Select[Any]:
    """Everything one attempt needs, by the delivery's id (`delivery_id`): built once, as
    building it takes longer than running it."""
    d, e, w = webhook_deliveries.c, events.c, webhook_endpoints.c
    return (
        select(
            webhook_deliveries,
            events.c.type.label("event_type"),
            e.created_at.label("event_created_at"),
            e.livemode,
            e.data_object,
            e.previous_attributes,
            e.request_id,
            e.idempotency_key,
            e.api_version.label("event_api_version"),
            _pending_count(e.id),
            *[col.label(f"ep__{col.name}") for col in webhook_endpoints.c],
            accounts.c.api_version.label("account_api_version"),
        )
        .join(events, e.id == d.event_id)
        .join(webhook_endpoints, w.id == d.endpoint_id)
        .join(accounts, accounts.c.id == d.account_id)
        .where(d.id == bindparam("delivery_id"))
    )


_CONTEXT = _context_query()
_CONTEXT_LOCKED = _CONTEXT.with_for_update(read=True, of=webhook_deliveries)


class DeliveryRepository:
    def __init__(self, db: AsyncConnection) -> None:
        self._db = db

    async def add_failed_unless_present(
        self, *, account_id: str, event_id: str, endpoint_id: str, now: datetime
    ) -> int:
        """The event's delivery to the endpoint, added as failed (a resend's, with nothing
        scheduled) if it has none; returns its id. One that exists is left as it is: a
        delivery a redelivery has just queued, after the caller found none, stays pending,
        with the job that redelivery staged for it still its current one."""
        d = webhook_deliveries.c
        statement = (
            insert(webhook_deliveries)
            .values(
                account_id=account_id,
                event_id=event_id,
                endpoint_id=endpoint_id,
                status=DeliveryStatus.FAILED.value,
                attempts=0,
                retry_step=0,
                first_attempt_at=now,
                next_attempt_at=None,
                finished_at=now,
            )
            .on_conflict_do_nothing(index_elements=["event_id", "endpoint_id"])
            .returning(d.id)
        )
        added = (await self._db.execute(statement)).scalar_one_or_none()
        if added is not None:
            return int(added)
        # The conflict waited for the insert in the way to commit: this statement's snapshot,
        # taken after, has it.
        existing = await self._db.execute(
            select(d.id).where(d.event_id == event_id, d.endpoint_id == endpoint_id)
        )
        return int(existing.scalar_one())

    async def context(self, delivery_id: int, *, lock: bool = False) -> DeliveryContext | None:
        """`lock`: hold the delivery's row FOR SHARE to the end of the transaction. Under READ
        COMMITTED the lock waits for a transaction that updated the row and then reads the
        version it committed (PostgreSQL re-reads a locked row's latest version), so the
        delivery is read as of the latest recorded attempt, not as of the statement's start."""
        query = _CONTEXT_LOCKED if lock else _CONTEXT
        row = (await self._db.execute(query, {"delivery_id": delivery_id})).first()
        if row is None:
            return None
        m = row._mapping
        endpoint_fields = {col.name: m[f"ep__{col.name}"] for col in webhook_endpoints.c}
        endpoint = endpoint_from_mapping(endpoint_fields)
        event = Event(
            id=m["event_id"],
            account_id=m["account_id"],
            type=m["event_type"],
            created_at=m["event_created_at"],
            livemode=m["livemode"],
            data_object=m["data_object"],
            previous_attributes=m["previous_attributes"],
            request_id=m["request_id"],
            idempotency_key=m["idempotency_key"],
            pending_webhooks=int(m["pending_webhooks"]),
            api_version=m["event_api_version"],
        )
        return DeliveryContext(
            delivery=delivery_from_row(row),
            event=event,
            endpoint=endpoint,
            endpoint_deleted=endpoint_fields["deleted_at"] is not None,
            account_api_version=m["account_api_version"],
        )

    async def get(self, account_id: str, event_id: str, endpoint_id: str) -> Delivery | None:
        d = webhook_deliveries.c
        row = (
            await self._db.execute(
                select(webhook_deliveries).where(
                    d.account_id == account_id, d.event_id == event_id, d.endpoint_id == endpoint_id
                )
            )
        ).first()
        return None if row is None else delivery_from_row(row)

    async def lock(self, delivery_id: int) -> None:
        """Lock the delivery's row for an update later in this transaction, and for numbering
        its attempt (`insert_attempt`).

        Deferred: in a `fastsql.deferring` block it goes out with the next statement that needs
        an answer."""
        await _LOCK_DELIVERY.defer(self._db, {"delivery_id": delivery_id})

    async def record_attempt_result(
        self,
        delivery_id: int,
        *,
        attempt_number: int,
        generation: int,
        retry_step: int,
        status: DeliveryStatus,
        attempted_at: datetime,
        next_attempt_at: datetime | None,
        answer: bool = True,
    ) -> bool | None:
        """Advance the delivery past `attempt_number` of its `generation`, at `retry_step` of
        the retry schedule, only if no other attempt did first and the delivery was not
        started over since (a redelivery: its attempts count from 0 again, so attempt 1 of the
        generation before would match by number alone): True if this call did.
        `answer=False`: the caller does not need to know, and the statement is deferred (in a
        `fastsql.deferring` block it goes out with the next statement that needs an answer);
        None is returned."""
        params = {
            "delivery_id": delivery_id,
            "generation": generation,
            "previous_attempts": attempt_number - 1,
            "attempts": attempt_number,
            "retry_step": retry_step,
            "status": status.value,
            "attempted_at": attempted_at,
            "next_attempt_at": next_attempt_at,
            "finished_at": None if status is DeliveryStatus.PENDING else attempted_at,
        }
        if not answer:
            await _RECORD_ATTEMPT_RESULT.defer(self._db, params)
            return None
        return await _RECORD_ATTEMPT_RESULT.run(self._db, params) == 1

    async def finish(
        self,
        delivery_id: int,
        status: DeliveryStatus,
        at: datetime,
        *,
        after: int | None = None,
        generation: int | None = None,
    ) -> bool:
        """Close a pending delivery without an attempt (its endpoint is gone or disabled, or its
        job failed for good); `after`: only if exactly that many attempts were made;
        `generation`: only if it is in that generation (not started over since). False if it
        was not pending (or was at another attempt, or in another generation)."""
        d = webhook_deliveries.c
        conditions = [d.id == delivery_id, d.status == DeliveryStatus.PENDING.value]
        if after is not None:
            conditions.append(d.attempts == after)
        if generation is not None:
            conditions.append(d.generation == generation)
        result = await self._db.execute(
            update(webhook_deliveries)
            .where(*conditions)
            .values(status=status.value, next_attempt_at=None, finished_at=at)
        )
        if not result.rowcount:
            return False
        await self.forget_retries_to_come(delivery_id)
        await self.unpark(delivery_id)
        return True

    async def note_give_up_failed(
        self, delivery_id: int, *, generation: int | None, reason: str
    ) -> int | None:
        """Count one more failed give-up of the pending delivery (of `generation`, when given)
        and keep `reason`; returns the count, or None if the delivery is no longer pending in
        that generation (its give-up was not what left it so)."""
        d = webhook_deliveries.c
        conditions = [d.id == delivery_id, d.status == DeliveryStatus.PENDING.value]
        if generation is not None:
            conditions.append(d.generation == generation)
        counted = await self._db.execute(
            update(webhook_deliveries)
            .where(*conditions)
            .values(give_up_failures=d.give_up_failures + 1, give_up_error=reason)
            .returning(d.give_up_failures)
        )
        found: int | None = counted.scalar_one_or_none()
        return found

    async def next_attempt_due(self, delivery_id: int) -> datetime | None:
        """When the worker attempts the delivery next; None if it is not pending. The row is
        held FOR SHARE to the end of the transaction: an attempt being recorded is waited for
        and read as it committed, and none is recorded before this transaction ends."""
        d = webhook_deliveries.c
        due = await self._db.execute(
            select(d.next_attempt_at)
            .where(d.id == delivery_id, d.status == DeliveryStatus.PENDING.value)
            .with_for_update(read=True)
        )
        found: datetime | None = due.scalar_one_or_none()
        return found

    async def forget_retries_to_come(self, delivery_id: int) -> None:
        """The delivery ends without the retry its attempts show: none of them shows one.
        Call it before the delivery's `last_attempt_at` moves on."""
        await _FORGET_RETRIES_TO_COME.run(self._db, {"delivery_id": delivery_id})

    async def mark_succeeded_by_resend(self, delivery_id: int, at: datetime) -> None:
        d = webhook_deliveries.c
        # Before `last_attempt_at` becomes the resend's time.
        await self.forget_retries_to_come(delivery_id)
        await self._db.execute(
            update(webhook_deliveries)
            .where(d.id == delivery_id, d.status != DeliveryStatus.SUCCEEDED.value)
            .values(
                status=DeliveryStatus.SUCCEEDED.value,
                next_attempt_at=None,
                finished_at=at,
                last_attempt_at=at,
            )
        )
        await self.unpark(delivery_id)

    async def unpark(self, delivery_id: int) -> None:
        """The delivery waits for a slot no more (`remit.webhooks.parking`): it ended, or a job
        of it is making its attempt, or will. Left parked, it would be woken with a slot let go:
        a job for nothing, or a second job for its attempt.

        Deferred: in a `fastsql.deferring` block it goes out with the next statement that needs
        an answer."""
        await _UNPARK.defer(self._db, {"delivery_id": delivery_id})

    async def undelivered(
        self,
        account_id: str,
        endpoint: WebhookEndpoint,
        *,
        since: datetime,
        after: EventCursor | None,
        limit: int,
    ) -> builtins.list[EventCursor]:
        """The account's events created at or after `since` (and after `after`), oldest
        first, at most `limit`, that `endpoint` subscribes to now and that were not delivered
        to it: their delivery failed, or they have none and were recorded once it existed
        (while it was disabled, say). Events whose delivery is pending or succeeded are left
        out, so a redelivery queued once is not queued again while it runs.

        Only subscriptions as they are now count: a resend may have sent the endpoint another
        type once, by hand, and unsubscribing stops redeliveries as it stops deliveries. An
        event recorded while the endpoint did not subscribe to its type, and subscribed to
        since, looks the same as one recorded while it was disabled: no history of either is
        kept."""
        e, d = events.c, webhook_deliveries.c
        of_this_endpoint = and_(d.event_id == e.id, d.endpoint_id == endpoint.id)
        underway_or_done = (
            select(literal(1))
            .where(
                of_this_endpoint,
                d.status.in_([DeliveryStatus.PENDING.value, DeliveryStatus.SUCCEEDED.value]),
            )
            .exists()
        )
        failed = (
            select(literal(1))
            .where(of_this_endpoint, d.status == DeliveryStatus.FAILED.value)
            .exists()
        )
        conditions = [
            e.account_id == account_id,
            e.created_at >= since,
            ~underway_or_done,
            # An event older than the endpoint was never meant for it, unless a resend of it
            # failed (which made it a delivery of the endpoint's).
            or_(e.created_at >= endpoint.created_at, failed),
        ]
        if ALL_EVENTS not in endpoint.enabled_events:
            conditions.append(e.type.in_(endpoint.enabled_events))
        if after is not None:
            conditions.append(_after(after))
        rows = await self._db.execute(
            select(e.created_at, e.id, e.seq)
            .where(*conditions)
            .order_by(e.created_at, e.seq)
            .limit(limit)
        )
        return [EventCursor(row.created_at, row.id, row.seq) for row in rows]

    async def insert_attempt(self, attempt: NewAttempt, account_id: str) -> DeliveryAttempt:
        """Store the attempt, numbered after every attempt of its delivery stored so far, and
        return it as stored. Call it holding the delivery's row lock (`lock`), taken before
        this transaction read anything it numbers by: two recordings at once (the worker's and
        a resend's, two resends, two jobs of one attempt) then number one after the other."""
        row = {
            "id": attempt.id,
            "delivery_id": attempt.delivery_id,
            "account_id": account_id,
            "event_id": attempt.event_id,
            "endpoint_id": attempt.endpoint_id,
            "attempted_at": attempt.attempted_at,
            "http_status": attempt.http_status,
            "latency_ms": attempt.latency_ms,
            "response_snippet": attempt.response_snippet,
            "error": attempt.error,
            "next_retry_at": attempt.next_retry_at,
            "succeeded": attempt.succeeded,
        }
        stored = await _INSERT_NUMBERED_ATTEMPT.first(self._db, row)
        assert stored is not None
        return attempt.numbered(int(stored["attempt_number"]))

    async def attempt_cursor(self, account_id: str, attempt_id: str) -> Cursor | None:
        a = webhook_delivery_attempts.c
        row = (
            await self._db.execute(
                select(a.attempted_at, a.id).where(a.account_id == account_id, a.id == attempt_id)
            )
        ).first()
        return None if row is None else Cursor(row.attempted_at, row.id)

    async def list_attempts(
        self,
        account_id: str,
        *,
        event_id: str | None,
        endpoint_id: str | None,
        page: Page,
    ) -> tuple[list[DeliveryAttempt], bool]:
        a = webhook_delivery_attempts.c
        conditions = [a.account_id == account_id]
        if event_id is not None:
            conditions.append(a.event_id == event_id)
        if endpoint_id is not None:
            conditions.append(a.endpoint_id == endpoint_id)
        rows, has_more = await _paged(
            self._db, select(webhook_delivery_attempts), conditions, a.attempted_at, a.id, page
        )
        return [attempt_from_row(row) for row in rows], has_more


# --- concurrency slots ----------------------------------------------------------------------

# The endpoint's row is locked in a statement of its own, before the slot is counted and taken,
# so concurrent acquirers count one after another (a count in the locking statement would read
# a snapshot taken before the lock was granted). Both travel in one round trip (a pipeline):
# each statement still takes its own snapshot. FOR NO KEY UPDATE, not FOR UPDATE: it excludes
# the other slot-takers just the same, but not the key-share lock that recording an event (on
# every payment's path) takes on the endpoint when it inserts the event's delivery.
_LOCK_ENDPOINT_FOR_SLOTS = Statement(
    "SELECT id FROM webhook_endpoints WHERE id = %(endpoint_id)s FOR NO KEY UPDATE"
)
# The delivery's own slot is left out of the count: a job that takes back the slot it holds
# needs no other one.
_TAKE_SLOT = Statement(
    "INSERT INTO webhook_inflight (delivery_id, endpoint_id, leased_until, job_id)"
    " SELECT %(delivery_id)s, %(endpoint_id)s, %(until)s, %(job_id)s"
    " WHERE (SELECT count(*) FROM webhook_inflight"
    " WHERE endpoint_id = %(endpoint_id)s AND leased_until > %(now)s"
    " AND delivery_id <> %(delivery_id)s) < %(limit)s"
    " ON CONFLICT (delivery_id) DO UPDATE"
    " SET leased_until = EXCLUDED.leased_until, job_id = EXCLUDED.job_id"
    " WHERE webhook_inflight.leased_until <= %(now)s"
    " OR webhook_inflight.job_id = EXCLUDED.job_id"
    " RETURNING delivery_id"
)


class InflightRepository:
    def __init__(self, db: AsyncConnection) -> None:
        self._db = db

    async def try_acquire(
        self,
        *,
        endpoint_id: str,
        delivery_id: int,
        job_id: int,
        limit: int,
        now: datetime,
        until: datetime,
    ) -> bool:
        """Take one of the endpoint's `limit` slots for this delivery, for job `job_id`, within
        this transaction.

        The endpoint row is locked first, in its own statement, so concurrent acquirers count one
        after another. A delivery whose own slot is still leased to another job (a duplicate
        job for it is in flight) does not get a second one. The job that holds it takes it
        again: a run that failed after taking it (its work rolled back, the slot's commit
        kept) is retried as the same job, whose failed runs then count towards its attempt
        limit; found busy, it would wait in a new job, with none counted, for ever. A job woken
        for a slot let go finds that slot its own already (`remit.webhooks.parking`).

        The delivery is unparked first, whatever follows: the job takes its attempt on (it
        POSTs, or parks the delivery again, or waits in a new job). One parked by this job
        before, in a run whose transaction then failed, would otherwise be woken with a slot
        let go while this run POSTs: its woken job would take over the slot this one holds,
        and POST the same attempt beside it. The parked row is taken after the endpoint's and
        before the slot's, in the order the sweep takes them, and a hand-over (a parked row,
        then its slot): none of them waits for another that waits for it.
        """
        params = {"delivery_id": delivery_id, "endpoint_id": endpoint_id, "job_id": job_id,
                  "now": now, "until": until, "limit": limit}  # fmt: skip
        async with fastsql.deferring(self._db):
            await _LOCK_ENDPOINT_FOR_SLOTS.defer(self._db, {"endpoint_id": endpoint_id})
            await _UNPARK.defer(self._db, {"delivery_id": delivery_id})
            return await _TAKE_SLOT.first(self._db, params) is not None

    async def purge_expired(self, now: datetime) -> None:
        await self._db.execute(
            webhook_inflight.delete().where(webhook_inflight.c.leased_until < now)
        )
