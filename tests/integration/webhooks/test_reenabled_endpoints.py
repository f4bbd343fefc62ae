"""An endpoint enabled again starts afresh: its owner mended it, so neither the run of failures
that disabled it nor the honoured 429s it used up while failing count against it. Only a 2xx
gives an endpoint its 429s back otherwise, and one disabled while failing never got one: its
first 429 after being enabled again would step its delivery's schedule on (five minutes)
instead of waiting the second it asked for."""

from datetime import timedelta

import pytest

from remit.webhooks.domain import MAX_HONOURED_RATE_LIMITS, DisabledReason, EndpointStatus
from remit.webhooks.service import EndpointChanges
from tests.integration.webhooks.conftest import Bench, StartReceiver
from tests.support.receiver import Reply

pytestmark = pytest.mark.anyio

PAUSE = Reply(429, headers={"Retry-After": "1"})


class Answers:
    """A receiver's script the test switches as it goes."""

    def __init__(self, *first: Reply, then: Reply) -> None:
        self.first, self.then = list(first), then

    def __call__(self, index: int) -> Reply:
        return self.first[index] if index < len(self.first) else self.then


async def _use_up_the_honoured_429s(bench: Bench, event_id: str) -> None:
    """Ten `429 Retry-After: 1` honoured a second apart, and an eleventh that steps on."""
    for _ in range(MAX_HONOURED_RATE_LIMITS + 1):
        await bench.worker.drain()
        bench.clock.advance(1)
    assert len(await bench.attempts(event_id)) == MAX_HONOURED_RATE_LIMITS + 1


async def _a_429_is_honoured(bench: Bench, endpoint_id: str) -> bool:
    """Whether a new event's delivery, answered `429 Retry-After: 1`, tries again a second
    later (honoured) rather than a step of the schedule later."""
    event_id = await bench.record()
    await bench.worker.drain()
    [attempt] = await bench.attempts(event_id)
    assert (attempt.http_status, attempt.next_retry_at is not None) == (429, True)
    assert attempt.next_retry_at is not None
    return attempt.next_retry_at == attempt.attempted_at + timedelta(seconds=1)


async def test_an_endpoint_enabled_after_failing_has_its_429s_and_no_run_of_failures(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    answers = Answers(*[PAUSE] * (MAX_HONOURED_RATE_LIMITS + 1), then=Reply(500))
    receiver = await start_receiver(answers)
    endpoint = await bench.endpoint(receiver.url)
    first = await bench.record()
    await _use_up_the_honoured_429s(bench, first)
    await bench.follow_schedule(first, endpoint.id)
    disabled = await bench.service.get_endpoint(bench.account_id, endpoint.id)
    assert (disabled.status, disabled.disabled_reason) == (
        EndpointStatus.DISABLED,
        DisabledReason.FAILING,
    )

    await bench.service.update_endpoint(
        bench.account_id, endpoint.id, EndpointChanges(disabled=False)
    )
    answers.then = PAUSE
    assert await _a_429_is_honoured(bench, endpoint.id)
    # That 429 began a run of failures of its own: one a second old, not three days.
    enabled = await bench.service.get_endpoint(bench.account_id, endpoint.id)
    assert enabled.status is EndpointStatus.ENABLED
    assert enabled.failing_since == bench.clock.now()


async def test_an_endpoint_its_owner_disabled_and_enabled_has_its_429s_back(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver(lambda _: PAUSE)
    endpoint = await bench.endpoint(receiver.url)
    await _use_up_the_honoured_429s(bench, await bench.record())
    for disabled in (True, False):
        await bench.service.update_endpoint(
            bench.account_id, endpoint.id, EndpointChanges(disabled=disabled)
        )
    assert await _a_429_is_honoured(bench, endpoint.id)


async def test_enabling_an_endpoint_that_is_enabled_changes_nothing(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """`disabled=false` sent to an enabled endpoint (a client sending every field) is no fresh
    start: it would keep a dead endpoint from ever being disabled."""
    receiver = await start_receiver(lambda _: PAUSE)
    endpoint = await bench.endpoint(receiver.url)
    await _use_up_the_honoured_429s(bench, await bench.record())
    failing = await bench.service.get_endpoint(bench.account_id, endpoint.id)
    assert failing.failing_since is not None
    updated = await bench.service.update_endpoint(
        bench.account_id, endpoint.id, EndpointChanges(disabled=False)
    )
    assert updated.failing_since == failing.failing_since
    assert (await bench.service.get_endpoint(bench.account_id, endpoint.id)) == updated
    assert not await _a_429_is_honoured(bench, endpoint.id)
