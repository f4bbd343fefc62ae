from remit.payments.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_after_consecutive_failures_and_refuses_calls() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, open_s=5, now=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state.value == "open"
    assert not breaker.allow()


def test_a_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, now=Clock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_after_the_open_period_one_probe_goes_through_and_decides() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, open_s=5, now=clock)
    breaker.record_failure()
    clock.now = 4.9
    assert not breaker.allow()
    clock.now = 5.0
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()  # only one probe at a time
    breaker.record_failure()
    assert breaker.state.value == "open"
    clock.now = 10.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state.value == "closed"
    assert breaker.allow()


def test_a_probe_that_ends_without_an_answer_lets_the_next_call_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, open_s=5, now=clock)
    breaker.record_failure()
    clock.now = 5.0
    assert breaker.allow()
    assert not breaker.allow()
    breaker.release_probe()
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()
    breaker.record_success()
    assert breaker.state.value == "closed"


def test_releasing_when_no_probe_runs_changes_nothing() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, open_s=5, now=clock)
    breaker.record_failure()
    breaker.release_probe()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_a_probe_released_late_leaves_the_next_probe_claimed() -> None:
    """Probe A is slow; a call started while the breaker was closed fails, and the breaker
    opens again; after the open period call C claims the next probe. A then ends with no
    answer either way: releasing its own probe must not release C's, or a fourth call would
    probe beside C."""
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, open_s=5, now=clock)
    breaker.record_failure()
    clock.now = 5.0
    assert breaker.allow()
    a = breaker.probe
    breaker.record_failure()  # the other call's failure: open again
    clock.now = 10.0
    assert breaker.allow()  # C's probe
    breaker.release_probe(a)
    assert not breaker.allow()
    breaker.release_probe(breaker.probe)  # C's own release does let the next call probe
    assert breaker.allow()
