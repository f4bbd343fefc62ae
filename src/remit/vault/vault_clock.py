"""The vault's time: the database's, not its host's (`remit.storage.database_clock`).

The vault stamps its audit events, its cards and their CVCs' expiry by it, and names the hour
of a CVC key by it. Vault processes share one database: on their hosts' clocks, a process
whose clock ran behind another's would count a forward stamped by the other as older than it
is, and refuse a deleted card while that forward could still commit at the acquirer
(`remit.vault.forwards_in_flight`); a clock stepped (NTP, an operator's `date`) would do the
same. Read when the vault starts and every minute after, carried forward between reads, so
that no forward pays a statement for it.
"""

from datetime import timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.config import core_max_clock_skew_s
from remit.storage.database_clock import ClockUser, DatabaseClock

VAULT: Final = ClockUser(
    process="vault",
    skew_setting="REMIT_CORE_MAX_CLOCK_SKEW_S",
    decides="its audit events' times, its CVCs' expiry and whether a forward may be in flight",
)


async def vault_clock(engine: AsyncEngine) -> DatabaseClock:
    """The database's clock, read once from the vault's database; the vault process reads it
    again every minute (`DatabaseClock.keep_reading`)."""
    return await DatabaseClock.read_from(
        engine, VAULT, max_skew=timedelta(seconds=core_max_clock_skew_s())
    )
