"""Two resends of one delivery recorded at the same moment number their attempts one after the
other, never both the same."""

import asyncio
from typing import Any

import pytest

from remit.webhooks import delivery as delivery_module
from remit.webhooks import service as service_module
from remit.webhooks.delivery import RecordedAttempt
from tests.integration.webhooks.conftest import Bench, StartReceiver
from tests.integration.webhooks.test_attempt_numbers import Record, until_one_waits_for_a_lock
from tests.support.receiver import Reply

pytestmark = pytest.mark.anyio


async def test_two_resends_recorded_together_number_their_attempts_apart(
    bench: Bench, start_receiver: StartReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first resend records its attempt and holds its transaction open; the second, whose
    POST is made by then, comes to record its own: it waits for the first to commit, then
    numbers its attempt after it. With nothing to hold it back, it would count the attempts
    the first had not committed yet and take the same number. Failures (500), so that neither
    ends the delivery, which would serialize them on its own."""
    receiver = await start_receiver(lambda _: Reply(500))
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    await bench.worker.drain()  # attempt 1 fails; the retry waits

    first_recorded, first_may_commit = asyncio.Event(), asyncio.Event()
    record_resend: Record = delivery_module.record_manual_attempt

    async def first_holds_its_commit(*args: Any, **kwargs: Any) -> RecordedAttempt:
        first = not first_recorded.is_set()
        recorded = await record_resend(*args, **kwargs)
        if first:
            first_recorded.set()
            await first_may_commit.wait()
        return recorded

    monkeypatch.setattr(service_module, "record_manual_attempt", first_holds_its_commit)
    first = asyncio.create_task(bench.service.resend(bench.account_id, event_id, endpoint.id))
    await first_recorded.wait()
    second = asyncio.create_task(bench.service.resend(bench.account_id, event_id, endpoint.id))
    assert await until_one_waits_for_a_lock(bench.engine)
    first_may_commit.set()
    numbers = [(await first).attempt.attempt_number, (await second).attempt.attempt_number]

    assert numbers == [2, 3]
    assert sorted(a.attempt_number for a in await bench.attempts(event_id)) == [1, 2, 3]
    assert await bench.delivery_status(event_id, endpoint.id) == "pending"
