"""How work that runs again and again reports a database that is unavailable.

A periodic task, a job loop or a listener whose database is out of reach fails the same way on
every run until it is back: a traceback each time says nothing the first line did not, and
buries the rest of the log. So an outage is one line when it begins (what failed, and the
server's or the network's answer), a reminder while it lasts, and one line when it ends. Any
other failure keeps its traceback, every time: it may be a bug.
"""

import logging
import time
from collections.abc import Callable
from typing import Final

from remit.storage.driver_errors import database_unavailable
from remit.storage.reachability import unavailability_reason

REMIND_EVERY_S: Final = 60.0


def log_failure(log: logging.Logger, doing: str, error: BaseException) -> None:
    """Log that `doing` failed with `error`: one line when its database was unavailable (the
    caller tries again later), the traceback otherwise."""
    if database_unavailable(error):
        log.warning("%s failed: database unavailable (%s)", doing, unavailability_reason(error))
    else:
        log.error("%s failed", doing, exc_info=error)


class OutageLog:
    """The log of one piece of work that is tried again and again (`doing` names it): call
    `failed` with each failure and `succeeded` after each run that went through.

    `is_outage` says which failures are the database's (by default its availability errors);
    `level` is the level of an outage's lines (a listener that falls back to polling loses
    nothing, and says so at INFO); `meanwhile` what becomes of the work while it lasts;
    `settle_s` how long an outage must go without a failure before a success ends it (for one
    that fails only some of the work, a pool short of connections under load, where successes
    and failures alternate: without it, each failure after a success would begin an outage)."""

    def __init__(
        self,
        log: logging.Logger,
        doing: str,
        *,
        is_outage: Callable[[BaseException], bool] = database_unavailable,
        level: int = logging.ERROR,
        meanwhile: str = "trying again",
        remind_every_s: float = REMIND_EVERY_S,
        settle_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._doing = doing
        self._is_outage = is_outage
        self._level = level
        self._meanwhile = meanwhile
        self._remind_every_s = remind_every_s
        self._settle_s = settle_s
        self._clock = clock
        self._since: float | None = None
        self._last_failure = 0.0
        self._reminded = 0.0
        self._failures = 0

    @property
    def in_outage(self) -> bool:
        return self._since is not None

    def failed(self, error: BaseException) -> None:
        if not self._is_outage(error):
            self._log.error("%s failed", self._doing, exc_info=error)
            return
        now = self._clock()
        self._failures += 1
        self._last_failure = now
        if self._since is None:
            self._since = self._reminded = now
            self._log.log(self._level, "%s failed: database unavailable (%s); %s",
                          self._doing, unavailability_reason(error),
                          self._meanwhile)  # fmt: skip
        elif now - self._reminded >= self._remind_every_s:
            self._reminded = now
            self._log.log(self._level, "%s still failing: database unavailable for %.0fs, "
                          "%d attempts (%s); %s", self._doing, now - self._since,
                          self._failures, unavailability_reason(error),
                          self._meanwhile)  # fmt: skip

    def succeeded(self) -> None:
        if self._since is None:
            return
        if self._settle_s and self._clock() - self._last_failure < self._settle_s:
            return
        self._log.info("%s works again: database back after %.0fs, %d failed attempts",
                       self._doing, self._clock() - self._since, self._failures)  # fmt: skip
        self._since = None
        self._failures = 0
