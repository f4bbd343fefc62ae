"""What one run of a batch sweep left undone, said once for the run.

A sweep of due rows (the ledger's release of funds, the end of expired 3-D Secure challenges)
handles each row on its own: one that fails is left for the next run, and the run goes on past
it to the rows behind. A row that fails every time fails on every run, every few seconds; a
line and a traceback for each would flood the log and say nothing new. So a run says once what
it left: how many rows, a few of them by name, and the first failure (its traceback, or one
line when the database was out of reach).
"""

import logging
from typing import Final

from remit.storage.driver_errors import database_unavailable
from remit.storage.reachability import unavailability_reason

# How many of the items left a run's line names.
NAMED: Final = 5


class SkippedItems:
    """The items of one run of `doing` that failed: `add` each, `report` once the run ends."""

    def __init__(self, log: logging.Logger, doing: str) -> None:
        self._log = log
        self._doing = doing
        self._count = 0
        self._named: list[str] = []
        self._first: BaseException | None = None

    def add(self, item: str, error: BaseException) -> None:
        self._count += 1
        if len(self._named) < NAMED:
            self._named.append(item)
        if self._first is None:
            self._first = error

    def report(self) -> None:
        """Log what the run left, if anything, in one record."""
        if self._first is None:
            return
        more = self._count - len(self._named)
        named = "; ".join(self._named) + (f"; and {more} more" if more else "")
        left = f"{self._doing}: {self._count} left for the next run ({named})"
        if database_unavailable(self._first):
            reason = unavailability_reason(self._first)
            self._log.warning("%s: database unavailable (%s)", left, reason)
        else:
            self._log.error("%s; the first failed with:", left, exc_info=self._first)
