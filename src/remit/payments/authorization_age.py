"""When an uncaptured authorization expires, told by the database's clock.

The network holds an authorization for 7 days from when it made it, and the merchant may capture
it until then; the worker releases it (`PaymentsService.expire_authorization`) once they have
passed. The job that does is scheduled for then by the core's clock and claimed by the worker's.
Both tell the database's time (`remit.storage.database_clock`), but each carries it forward
between reads, and a core of an earlier version, still running during an upgrade, stamped both
times by its host's clock: one running ahead would have the job released early, and the
merchant's capture on the sixth day would fail. So the release checks the authorization's age
against the database's own clock (`now()`) first.
"""

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.payments.charges import Charge
from remit.payments.network import AUTHORIZED_AT_KEY
from remit.worker.jobs import NotDueError

AUTHORIZATION_VALIDITY: Final = timedelta(days=7)


def authorization_expires_at(charge: Charge) -> datetime:
    """7 days after the network authorized the charge. A charge authorized before that time
    was kept counts from its creation, which comes before its authorization by at most the
    3-D Secure challenge it waited on (an hour at most)."""
    return (charge.authorized_at or charge.created_at) + AUTHORIZATION_VALIDITY


def answered_at(answer: Mapping[str, object], now: datetime) -> dict[str, object]:
    """The network's answer as the charge keeps it, with when the authorization was made: the
    network's time of it, as a look-up tells it, which can be days before the core learns of
    it (the answer lost, the acquirer out of reach meanwhile); else `now`, the core's time of
    a direct answer. Kept with the answer, it survives a pause at `authorization_done` too,
    and every 7-day clock (the capture's, the expiry job's, the ledger's reservation) starts
    from it, not from when the core got round to recording it."""
    return {**answer, AUTHORIZED_AT_KEY: network_authorized_at(answer, now).isoformat()}


def network_authorized_at(network_result: Mapping[str, object], now: datetime) -> datetime:
    """When the network made the authorization the charge's stored answer is of, never later
    than `now` (a network's clock ahead of the core's must not lengthen the 7 days); `now`
    for an answer stored before that time was kept."""
    stored = network_result.get(AUTHORIZED_AT_KEY)
    return min(datetime.fromisoformat(stored), now) if isinstance(stored, str) else now


async def check_expired(db: AsyncConnection, charge: Charge) -> None:
    """Raise NotDueError, with the time it expires, unless the charge's authorization has
    expired by the database's clock (the time its transaction began)."""
    expires_at = authorization_expires_at(charge)
    if (await db.execute(select(func.now()))).scalar_one() < expires_at:
        raise NotDueError(expires_at)
