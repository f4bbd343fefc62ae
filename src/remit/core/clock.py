"""Time as a dependency, so retries, expiries and schedules can be tested with an injected clock."""

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to; for tests."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware start")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now = datetime.fromtimestamp(self._now.timestamp() + seconds, UTC)


def unix_seconds(moment: datetime) -> int:
    """Stripe's wire form of a timestamp: whole seconds since the epoch."""
    return int(moment.timestamp())


def monotonic_s() -> float:
    return time.monotonic()
