"""Reading PostgreSQL notifications in tests without timing them.

A notification sent at a commit reaches a listening connection soon after, but "soon" on a
loaded machine can pass any short wait. So a test names how many it expects: those are waited
for as long as it takes (up to a bound that only a broken sender reaches), and a short quiet
wait after them catches any extra one, which the test's assertion then shows."""

import asyncio

import psycopg

# Only a notification that never comes waits this long.
ARRIVAL_BOUND_S = 15.0
# After the expected ones (or in place of them, when none is expected): long enough for one
# sent by the same commit to follow.
QUIET_S = 0.3


async def notifications(
    connection: psycopg.AsyncConnection[object], expected: int
) -> list[psycopg.Notify]:
    """The notifications that arrive: `expected` of them however long they take, then any
    further ones that follow within a short wait."""
    arrived: list[psycopg.Notify] = []
    if expected:
        # `stop_after` ends the wait only once the packet holding the last expected one is
        # read whole: breaking out of the generator mid-packet would drop the rest of it,
        # the extra notifications of the same commit this is meant to show.
        async with asyncio.timeout(ARRIVAL_BOUND_S):
            arrived = [note async for note in connection.notifies(stop_after=expected)]
    arrived.extend([note async for note in connection.notifies(timeout=QUIET_S)])
    return arrived
