"""An idempotency key kept held while its request waits on the card network.

A key's lease (REMIT_IDEMPOTENCY_LEASE_S, 30 s) says how long a request may go unheard from
before a client's retry or the completer takes its key over. One step at the network can take
far longer (`step_bounds`: up to 89 s for an authorization at the default 10 s network timeout),
and a request still waiting on one is not dead: taken over, the network still acts once (by
reference), but the request's own caller gets a 409 for a payment that is going through, and
the taker repeats the look-ups. So while a step runs, its request renews the lease every third
of a lease. A request that dies stops renewing with it, and its key is free a lease later, as
before.

The renewals also stop once the step has run longer than any step can (its worst case and a
margin): a request stuck on something no timeout bounds lets its key go to the completer rather
than hold it for ever. The owner token still fences every write, renewed or not.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.config import network_timeout_s
from remit.core.clock import monotonic_s
from remit.payments import idempotency
from remit.payments.idempotency import KeyRecord
from remit.payments.step_bounds import authorization_worst_s
from remit.storage.outages import log_failure

log = logging.getLogger(__name__)

# Beyond a step's own calls: the database work it does between them (the card's vault token,
# say) and the renewals' own round trips.
STEP_MARGIN_S = 10.0
# However short the lease, renewals are not sent back to back.
MIN_RENEWAL_INTERVAL_S = 0.01


def longest_step_s() -> float:
    """How long a request's renewals may go on: the longest step at the network (an
    authorization's) at the configured timeout, with a margin."""
    return authorization_worst_s(network_timeout_s()) + STEP_MARGIN_S


@contextlib.asynccontextmanager
async def key_kept_held(
    engine: AsyncEngine, record: KeyRecord, *, now: Callable[[], datetime]
) -> AsyncIterator[None]:
    """Renew `record`'s key's lease until the block ends (or `longest_step_s` passes). The
    renewals stop before the block's end is handled: a key the request lets go after a
    failure (`idempotency.release`) is not taken back."""
    stop = asyncio.Event()
    renewing = asyncio.create_task(_renew_until_stopped(engine, record, now, stop))
    try:
        yield
    finally:
        stop.set()
        # A renewal in flight is cancelled, not waited for: with the pool saturated it would
        # hold the step's answer back for up to the pool's timeout. Cut off anywhere, it
        # harms nothing: `idempotency.prolong` extends only a lease still this claim's,
        # unfinished and not let go.
        renewing.cancel()
        # (gather: a cancellation of this task meanwhile is passed on, not taken for the
        # renewal's own and swallowed.)
        await asyncio.gather(renewing, return_exceptions=True)


async def _renew_until_stopped(
    engine: AsyncEngine, record: KeyRecord, now: Callable[[], datetime], stop: asyncio.Event
) -> None:
    interval_s = max(idempotency.lease().total_seconds() / 3, MIN_RENEWAL_INTERVAL_S)
    longest_s = longest_step_s()
    renew_until = monotonic_s() + longest_s
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        if stop.is_set():
            return
        if monotonic_s() >= renew_until:
            log.warning("a step of %s %s is still running after %.0f s, longer than any step at "
                        "the network can take; its key's lease is no longer renewed",
                        record.endpoint, record.key, longest_s)  # fmt: skip
            return
        try:
            async with engine.begin() as db:
                held = await idempotency.prolong(db, record, now=now())
        except Exception as error:
            # The lease may run out before the next renewal; the owner token still fences.
            log_failure(log, f"renewing the lease of {record.endpoint} {record.key}", error)
            continue
        if not held:
            return  # taken over, finished or let go: nothing left to keep
