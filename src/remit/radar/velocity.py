"""Velocity counters: attempts and declines per card, customer and IP over sliding windows.

One row per (account, dimension, key) holds two ring buffers: 60 one-minute slots (the hourly
window) and 24 one-hour slots (the daily window), each stamped with the last minute or hour it
was advanced to. Reading a count is a sum over at most 84 integers of one row, whatever the
history; recording an attempt advances the rings to now (zeroing the slots that fell out of the
window) and adds one. The windows slide with one-minute and one-hour granularity.

A count read for an attempt includes that attempt: the n-th attempt in an hour reads n.

Declines in a row lapse: a streak is forgotten once a day (`STREAK_LAPSE`) has passed since the
last decline it counted. Otherwise only an approval would end it, and a rule that blocks on it
(`Block if :declined_charges_in_a_row_per_card_number: >= 3`) would refuse every later payment
of the card, so that no approval could ever come: the card would be blocked for good after
three declines for insufficient funds. What counts as a decline is Radar's gate's to say
(`remit.radar.gate.counts_as_decline`).
"""

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Final

MINUTE_SLOTS: Final = 60
HOUR_SLOTS: Final = 24
# How long after its last decline a card's streak of declines in a row is forgotten.
STREAK_LAPSE: Final = timedelta(hours=24)


class Dimension(Enum):
    CARD = "card"
    CUSTOMER = "customer"
    IP = "ip"


def _minute(at: datetime) -> int:
    return int(at.timestamp()) // 60


def _hour(at: datetime) -> int:
    return int(at.timestamp()) // 3600


def _advanced(slots: tuple[int, ...], last: int, now: int) -> tuple[int, ...]:
    """The ring moved on from period `last` to `now`: periods in between are emptied."""
    size = len(slots)
    if now <= last:
        return slots
    if now - last >= size:
        return (0,) * size
    ring = list(slots)
    for period in range(last + 1, now + 1):
        ring[period % size] = 0
    return tuple(ring)


def _added(slots: tuple[int, ...], period: int) -> tuple[int, ...]:
    ring = list(slots)
    ring[period % len(ring)] += 1
    return tuple(ring)


@dataclass(frozen=True)
class Counter:
    first_seen_at: datetime
    last_minute: int
    last_hour: int
    attempts_by_minute: tuple[int, ...]
    attempts_by_hour: tuple[int, ...]
    declines_by_hour: tuple[int, ...]
    declines_in_a_row: int = 0
    last_cvc_check: str | None = None
    last_postal_check: str | None = None
    # When the streak's last decline was counted. None for a row written before this was
    # recorded: then the end of the hour the rings last moved to stands in for it, the latest
    # the decline can have been, and is kept here the first time the rings move on.
    last_declined_at: datetime | None = None

    @classmethod
    def empty(cls, now: datetime) -> "Counter":
        return cls(
            first_seen_at=now,
            last_minute=_minute(now),
            last_hour=_hour(now),
            attempts_by_minute=(0,) * MINUTE_SLOTS,
            attempts_by_hour=(0,) * HOUR_SLOTS,
            declines_by_hour=(0,) * HOUR_SLOTS,
        )

    def at(self, now: datetime) -> "Counter":
        """The same counts with the windows slid to `now`, and the streak of declines in a row
        forgotten once it has lapsed."""
        minute, hour = _minute(now), _hour(now)
        return replace(
            self,
            declines_in_a_row=0 if self._streak_lapsed(now) else self.declines_in_a_row,
            last_declined_at=self._last_decline_or_stand_in(),
            last_minute=max(minute, self.last_minute),
            last_hour=max(hour, self.last_hour),
            attempts_by_minute=_advanced(self.attempts_by_minute, self.last_minute, minute),
            attempts_by_hour=_advanced(self.attempts_by_hour, self.last_hour, hour),
            declines_by_hour=_advanced(self.declines_by_hour, self.last_hour, hour),
        )

    def with_attempt(self, now: datetime) -> "Counter":
        moved = self.at(now)
        return replace(
            moved,
            attempts_by_minute=_added(moved.attempts_by_minute, moved.last_minute),
            attempts_by_hour=_added(moved.attempts_by_hour, moved.last_hour),
        )

    def with_result(
        self, now: datetime, *, declined: bool, cvc_check: str | None, postal_check: str | None
    ) -> "Counter":
        moved = self.at(now)
        if declined:
            return replace(
                moved,
                declines_by_hour=_added(moved.declines_by_hour, moved.last_hour),
                declines_in_a_row=moved.declines_in_a_row + 1,
                last_declined_at=max(now, moved.last_declined_at or now),
                last_cvc_check=cvc_check or moved.last_cvc_check,
                last_postal_check=postal_check or moved.last_postal_check,
            )
        return replace(
            moved,
            declines_in_a_row=0,
            last_cvc_check=cvc_check or moved.last_cvc_check,
            last_postal_check=postal_check or moved.last_postal_check,
        )

    def _last_decline_or_stand_in(self) -> datetime | None:
        """The time of the streak's last decline; for a streak stored before it was recorded,
        the end of the hour the rings last moved to. Kept once the rings move on: each attempt
        moves them (blocked attempts are no declines, so nothing else would record it), and a
        stand-in recomputed from the new hour would keep a card retrying daily blocked for good.
        """
        if self.last_declined_at is not None or self.declines_in_a_row == 0:
            return self.last_declined_at
        return datetime.fromtimestamp((self.last_hour + 1) * 3600, UTC)

    def _streak_lapsed(self, now: datetime) -> bool:
        last = self._last_decline_or_stand_in()
        if self.declines_in_a_row == 0 or last is None:
            return False
        return now - last >= STREAK_LAPSE

    @property
    def hourly(self) -> int:
        return sum(self.attempts_by_minute)

    @property
    def daily(self) -> int:
        return sum(self.attempts_by_hour)

    @property
    def declines_daily(self) -> int:
        return sum(self.declines_by_hour)
