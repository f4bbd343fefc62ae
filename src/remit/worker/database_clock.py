"""The worker tells the time by the database's clock (`remit.storage.database_clock`), read
again among its periodic tasks."""

from typing import Final

from remit.storage.database_clock import READ_EVERY_S, ClockUser, DatabaseClock
from remit.worker.runner import Periodic

READING_TASK_NAME: Final = "read-the-database-clock"
WORKER: Final = ClockUser(
    process="worker",
    skew_setting="REMIT_WORKER_MAX_CLOCK_SKEW_S",
    decides="every due time, lease, expiry and retention",
)


def reading_task(clock: DatabaseClock) -> Periodic:
    """The worker's task that reads the database's time again every minute."""
    return Periodic(READING_TASK_NAME, READ_EVERY_S, clock.read)
