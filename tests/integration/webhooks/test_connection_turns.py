"""A POST that waits for a connection of the sender's is not timed while it waits: its
attempt, timeout and latency, starts once it has its turn. Timed from the call, one waiting
behind slow endpoints was recorded as its own endpoint's timeout, though it was then often
made: retried, the event was delivered twice, and the endpoint counted towards disabling."""

import asyncio

import pytest

from remit.config import MAX_WORKER_DELIVERY_SLOTS
from remit.webhooks.sender import WebhookSender
from remit.webhooks.urls import UrlPolicy
from remit.webhooks.worker import delivery_sender
from tests.integration.webhooks.conftest import StartReceiver
from tests.support.receiver import Reply

pytestmark = pytest.mark.anyio

TIMEOUT_S = 1.0
# Each answer comes well within the timeout, two of them one after the other do not.
ANSWER_S = 0.6


async def test_a_post_waiting_for_a_connection_is_not_timed_out_by_the_wait(
    start_receiver: StartReceiver,
) -> None:
    receiver = await start_receiver(lambda _: Reply(delay_s=ANSWER_S))
    sender = WebhookSender(UrlPolicy(allow_internal=True), timeout_s=TIMEOUT_S, max_connections=2)
    try:
        results = await asyncio.gather(*(sender.post(receiver.url, b"{}", {}) for _ in range(3)))
    finally:
        await sender.close()
    assert [(r.http_status, r.error) for r in results] == [(200, None)] * 3
    assert receiver.max_in_flight == 2
    # Each latency is its own POST's, not the wait before it.
    assert all(r.latency_ms < TIMEOUT_S * 1000 for r in results)


def test_the_workers_sender_leaves_its_bound_to_the_delivery_slots() -> None:
    """The worker's delivery slots (up to MAX_WORKER_DELIVERY_SLOTS), and each endpoint's own,
    bound its POSTs: a bound of the sender's below them would keep deliveries waiting, their
    jobs' runs outlasting what their leases allow for one POST."""
    sender = delivery_sender(UrlPolicy(allow_internal=True))
    assert sender.max_connections is None or sender.max_connections >= MAX_WORKER_DELIVERY_SLOTS
