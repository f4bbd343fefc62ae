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
    # Same timestamp (a fixed clock): handed out in the order they were recorded.
    assert handed_out == [first, second]


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


async def test_a_replay_hands_out_only_what_comes_after_the_event_it_names(
    bench: Bench, notifier: EventNotifier
) -> None:
    """The look-back that catches late commits reaches events before `starting_after` too:
    they are not the client's to see again."""
    await bench.record("customer.created")
    bench.clock.advance(2)
    named = await bench.record("customer.updated")
    bench.clock.advance(2)
    after = await bench.record("customer.deleted")
    stream = await LiveEvents.open(
        bench.service, notifier, bench.account_id, types=[], starting_after=named
    )
    events = stream.__aiter__()
    try:
        assert (await asyncio.wait_for(anext(events), timeout=10)).id == after
        # Stamped before the named event and after it, both committing late (behind the
        # newest event sent, within the look-back): only the later one is handed out. The
        # earlier is recorded first and would come first, were it handed out at all.
        bench.clock.advance(-3)
        await bench.record("customer.created")
        bench.clock.advance(2)
        late = await bench.record("customer.updated")
        assert (await asyncio.wait_for(anext(events), timeout=10)).id == late
    finally:
        await events.aclose()  # type: ignore[attr-defined]
