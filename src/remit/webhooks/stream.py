"""Live events for `remit listen`: wake on NOTIFY from `record_event`, then read what is new.

One LISTEN connection per core process serves every open stream. Streams also look every few
seconds on their own, so a lost notification (or a LISTEN connection that is down) only delays
an event, never drops it: the stream reads everything after the last event it sent.
"""

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from remit.storage.connecting import libpq_arguments
from remit.storage.outages import OutageLog
from remit.webhooks.domain import Event
from remit.webhooks.event_types import filter_matches
from remit.webhooks.outbox import EVENTS_CHANNEL
from remit.webhooks.repository import BEFORE_EVERY_SEQ, EventCursor
from remit.webhooks.service import WebhooksService

log = logging.getLogger(__name__)

FALLBACK_POLL_S = 2.0
BATCH = 100
LOOKBACK = timedelta(seconds=10)


class EventNotifier:
    """Fans NOTIFYs on the events channel out to the streams of each account."""

    def __init__(self, libpq_url: str) -> None:
        self._url = libpq_url
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, account_id: str) -> asyncio.Event:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen())
        wake = asyncio.Event()
        self._waiters[account_id].add(wake)
        return wake

    def unsubscribe(self, account_id: str, wake: asyncio.Event) -> None:
        waiters = self._waiters.get(account_id)
        if waiters is None:
            return
        waiters.discard(wake)
        if not waiters:
            del self._waiters[account_id]

    async def _listen(self) -> None:
        outage = OutageLog(log, "listening for new events (streams poll meanwhile)",
                           level=logging.INFO, is_outage=lambda error: True)  # fmt: skip
        while True:
            try:
                # Bounded (`remit.storage.connecting`): a connection to a database that went
                # away would otherwise wait for notifications for ever.
                connection = await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, **libpq_arguments(self._url)
                )
                async with connection:
                    await connection.execute(f"LISTEN {EVENTS_CHANNEL}")
                    outage.succeeded()
                    async for note in connection.notifies():
                        for wake in self._waiters.get(note.payload, ()):
                            wake.set()
            except (psycopg.Error, OSError) as error:
                outage.failed(error)
                await asyncio.sleep(FALLBACK_POLL_S)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@dataclass
class LiveEvents:
    """The account's events after a starting point, as they commit.

    `open` fixes the starting point ("from now on" is the newest event at that moment) and
    subscribes to notifications before it returns, so a caller that tells its client it is
    ready only after `open` never misses an event committed after that.

    Events are stamped when their transaction starts but become visible when it commits, so an
    event can appear behind one already sent. Each read therefore looks back `LOOKBACK` before
    the newest event sent and skips the ids it has sent already; but never behind `floor`, the
    event a replay starts after: only events after it, in the stream's order (time, then the
    order they were recorded in: `EventCursor`), are the client's to see.
    """

    service: WebhooksService
    notifier: EventNotifier
    account_id: str
    types: Sequence[str]
    wake: asyncio.Event
    sent: dict[str, datetime]
    newest: datetime | None
    floor: EventCursor | None = None

    @classmethod
    async def open(
        cls,
        service: WebhooksService,
        notifier: EventNotifier,
        account_id: str,
        *,
        types: Sequence[str],
        starting_after: str | None,
    ) -> "LiveEvents":
        wake = notifier.subscribe(account_id)
        try:
            start = await service.event_cursor(account_id, starting_after)
            sent: dict[str, datetime] = {} if start is None else {start.id: start.at}
            newest = None if start is None else start.at
            # A replay goes on strictly after the event it names, whatever the look-back
            # would reach; "from now on" has no floor, every event committed after it is new.
            floor = start if starting_after is not None else None
            stream = cls(service, notifier, account_id, types, wake, sent, newest, floor)
            if starting_after is None:
                # "From now on": the events already committed within the look-back window
                # count as sent, or the first read would hand them out as new.
                async for _ in stream._new_events():
                    pass
        except BaseException:
            notifier.unsubscribe(account_id, wake)
            raise
        return stream

    async def __aiter__(self) -> AsyncIterator[Event]:
        try:
            while True:
                self.wake.clear()
                async for event in self._new_events():
                    yield event
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=FALLBACK_POLL_S)
        finally:
            self.close()

    def close(self) -> None:
        """Stop listening for the account's notifications (again is harmless)."""
        self.notifier.unsubscribe(self.account_id, self.wake)

    async def _new_events(self) -> AsyncIterator[Event]:
        page = self._read_from()
        while True:
            batch, last = await self.service.events_after(self.account_id, page, BATCH)
            for event in batch:
                if event.id in self.sent:
                    continue
                self.sent[event.id] = event.created_at
                if filter_matches(self.types, event.type):
                    yield event
            if len(batch) < BATCH:
                break
            page = last
        if self.sent:
            newest = max(self.sent.values())
            self.newest = newest
            self.sent = {k: at for k, at in self.sent.items() if at >= newest - LOOKBACK}

    def _read_from(self) -> EventCursor | None:
        """Where a read starts: `LOOKBACK` before the newest event sent, not behind the floor."""
        if self.newest is None:
            return self.floor
        looked_back = EventCursor(self.newest - LOOKBACK, "", BEFORE_EVERY_SEQ)
        if self.floor is not None and (self.floor.at, self.floor.seq) > (
            looked_back.at,
            looked_back.seq,
        ):
            return self.floor
        return looked_back
