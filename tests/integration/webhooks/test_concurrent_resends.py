"""Two resends of one delivery recorded at the same moment number their attempts one after the
other, never both the same."""

import asyncio
import contextlib

import pytest

from remit.webhooks.repository import DeliveryRepository
from tests.integration.webhooks.conftest import Bench, StartReceiver
from tests.support.receiver import Reply

pytestmark = pytest.mark.anyio

# How long a resend that has counted the attempts waits for the other to count too: long
# enough for the other's count to arrive when nothing holds it back, short for a test.
OTHER_COUNT_WAIT_S = 0.5


async def test_two_resends_recorded_together_number_their_attempts_apart(
    bench: Bench, start_receiver: StartReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both resends count the attempts before either inserts its own, unless something holds
    the second back until the first has committed: with nothing to, both would take the same
    number. Failures (500), so that neither ends the delivery, which would serialize them on
    its own."""
    receiver = await start_receiver(lambda _: Reply(500))
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    await bench.worker.drain()  # attempt 1 fails; the retry waits

    counted: list[int] = []
    both_counted = asyncio.Event()
    count_attempts = DeliveryRepository.count_attempts

    async def count_then_wait_for_the_other(self: DeliveryRepository, delivery_id: int) -> int:
        found = await count_attempts(self, delivery_id)
        counted.append(found)
        if len(counted) == 2:
            both_counted.set()
        # Past the wait, the other is taken to wait for this one's commit before it counts.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(both_counted.wait(), OTHER_COUNT_WAIT_S)
        return found

    monkeypatch.setattr(DeliveryRepository, "count_attempts", count_then_wait_for_the_other)
    resends = [bench.service.resend(bench.account_id, event_id, endpoint.id) for _ in range(2)]
    numbers = sorted(recorded.attempt.attempt_number for recorded in await asyncio.gather(*resends))

    assert numbers == [2, 3]
    assert sorted(a.attempt_number for a in await bench.attempts(event_id)) == [1, 2, 3]
    assert await bench.delivery_status(event_id, endpoint.id) == "pending"
