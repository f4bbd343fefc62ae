"""When an uncaptured authorization expires, told by the database's clock.

The network holds an authorization for 7 days, and the merchant may capture it until then; the
worker releases it (`PaymentsService.expire_authorization`) once they have passed. The job that
does is scheduled for then by the core's clock and claimed by the worker's. Both tell the
database's time (`remit.storage.database_clock`), but each carries it forward between reads,
and a core of an earlier version, still running during an upgrade, stamped both times by its
host's clock: one running ahead would have the job released early, and the merchant's capture
on the sixth day would fail. So the release checks the authorization's age against the
database's own clock (`now()`) first.
"""

from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.payments.charges import Charge
from remit.worker.jobs import NotDueError

AUTHORIZATION_VALIDITY: Final = timedelta(days=7)


def authorization_expires_at(charge: Charge) -> datetime:
    """7 days after the network authorized the charge. A charge authorized before that time
    was kept counts from its creation, which comes before its authorization by at most the
    3-D Secure challenge it waited on (an hour at most)."""
    return (charge.authorized_at or charge.created_at) + AUTHORIZATION_VALIDITY


async def check_expired(db: AsyncConnection, charge: Charge) -> None:
    """Raise NotDueError, with the time it expires, unless the charge's authorization has
    expired by the database's clock (the time its transaction began)."""
    expires_at = authorization_expires_at(charge)
    if (await db.execute(select(func.now()))).scalar_one() < expires_at:
        raise NotDueError(expires_at)
