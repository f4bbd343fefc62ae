"""`remit listen`'s stream: from the moment it opens, every event that commits, and nothing
from before."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from remit.webhooks.stream import EventNotifier, LiveEvents
from remit.worker.runner import libpq_url
from tests.integration.webhooks.conftest import Bench

pytestmark = pytest.mark.anyio


@pytest.fixture
async def notifier(bench: Bench) -> AsyncIterator[EventNotifier]:
    url = bench.engine.url.render_as_string(hide_password=False)
    made = EventNotifier(libpq_url(url))
    yield made
    await made.close()


async def test_a_stream_hands_out_what_commits_after_it_opened_and_nothing_before(
    bench: Bench, notifier: EventNotifier
) -> None:
    # Recorded just before the stream opens (well inside its look-back window).
    await bench.record("customer.created")
    await bench.record("customer.created")
    stream = await LiveEvents.open(
        bench.service, notifier, bench.account_id, types=[], starting_after=None
    )
    # Committed after the stream opened but before anyone reads it: what a client does as
    # soon as it is told the stream is ready.
    first = await bench.record("customer.updated")
    second = await bench.record("customer.deleted")
    events = stream.__aiter__()
    try:
        handed_out = [(await asyncio.wait_for(anext(events), timeout=10)).id for _ in range(2)]
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    # Same timestamp (a fixed clock): either order is the commit order's.
    assert sorted(handed_out) == sorted([first, second])


async def test_a_stream_that_is_never_read_stops_listening_when_closed(
    bench: Bench, notifier: EventNotifier
) -> None:
    stream = await LiveEvents.open(
        bench.service, notifier, bench.account_id, types=[], starting_after=None
    )
    assert bench.account_id in notifier._waiters
    stream.close()
    stream.close()
    assert bench.account_id not in notifier._waiters
