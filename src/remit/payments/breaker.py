"""A circuit breaker around the card network.

After `failure_threshold` consecutive failures it opens: calls fail at once, without touching
the network, for `open_s` seconds. Then it lets one probe through (half-open); a success
closes it, a failure opens it again. This keeps a struggling acquirer from being buried under
retries and gives callers an immediate, retryable answer instead of a timeout.

A breaker is told only of the calls of one path to the network (`NetworkBreakers`): an answer
on one path says nothing of another, and would otherwise close a breaker whose calls fail.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from remit.core.clock import monotonic_s


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    failure_threshold: int = 5
    open_s: float = 5.0
    now: Callable[[], float] = field(default=monotonic_s)
    _state: BreakerState = BreakerState.CLOSED
    _failures: int = 0
    _opened_at: float = 0.0
    _probe_in_flight: bool = False
    # Counts the probes claimed: a probe released late (its call ended after the breaker had
    # opened again and another call had claimed the next probe) must not release that one.
    _probes: int = 0

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self.now() - self._opened_at >= self.open_s:
            self._state = BreakerState.HALF_OPEN
            self._probe_in_flight = False
        return self._state

    def allow(self) -> bool:
        """Whether a call may go to the network now (claims the probe when half-open)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            self._probes += 1
            return True
        return False

    @property
    def probe(self) -> int:
        """The probe claimed last (by `allow`), for `release_probe`."""
        return self._probes

    def record_success(self) -> None:
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._probe_in_flight = False

    def release_probe(self, probe: int | None = None) -> None:
        """The probe ended without an answer either way (its caller was cancelled, or it
        failed before reaching the network): let the next call probe instead. Left claimed, it
        would refuse every call until the process restarts. `probe`: the one the caller
        claimed (`probe` after its `allow`); a later one, claimed since, is left claimed."""
        if probe is not None and probe != self._probes:
            return
        if self._state is BreakerState.HALF_OPEN:
            self._probe_in_flight = False

    def record_failure(self) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
            self._state = BreakerState.OPEN
            self._opened_at = self.now()
            self._probe_in_flight = False


@dataclass(frozen=True)
class NetworkBreakers:
    """One breaker for each path the core's calls take to the network, each told only of its
    own calls' answers.

    - `forwards`: authorizations, which the vault forwards to its allowlisted acquirer. The
      vault, or its link to the acquirer, can be down while the acquirer answers the core.
    - `operations`: captures, voids and refunds, which the core sends to the acquirer.
    - `lookups`: the core's look-ups at the acquirer, which settle the sends whose outcome is
      unknown. An acquirer can fail its writes while it answers reads (its faults spare reads,
      `remit.acquirer.faults`).

    Sharing one breaker, the "no record" a look-up answers between two failed sends of the
    same operation (`PaymentsService._settle`) would close it each time, so it would never
    open while every send failed, each waiting out its timeout. Apart, the failing path's
    breaker opens and its sends are answered at once with a retryable error, while look-ups
    still settle the operations whose outcome is unknown."""

    forwards: CircuitBreaker = field(default_factory=CircuitBreaker)
    operations: CircuitBreaker = field(default_factory=CircuitBreaker)
    lookups: CircuitBreaker = field(default_factory=CircuitBreaker)
