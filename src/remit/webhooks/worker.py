"""What the worker process runs for webhooks: the delivery job and the periodic clean-ups."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import Clock, SystemClock
from remit.webhooks.delivery import DeliverySettings, WebhookDeliverer
from remit.webhooks.domain import EVENT_RETENTION
from remit.webhooks.outbox import DELIVER_JOB
from remit.webhooks.rendering import Renderer
from remit.webhooks.repository import EventRepository, InflightRepository
from remit.webhooks.sender import WebhookSender
from remit.webhooks.urls import UrlPolicy
from remit.worker.runner import JobHandler, Periodic

PURGE_BATCH = 1000


@dataclass
class WebhookWorkerParts:
    handlers: dict[str, JobHandler]
    given_up: dict[str, JobHandler]
    periodic: list[Periodic]
    close: Callable[[], Awaitable[None]]


def webhook_worker_parts(
    engine: AsyncEngine,
    policy: UrlPolicy,
    *,
    clock: Clock | None = None,
    renderer: Renderer | None = None,
    settings: DeliverySettings | None = None,
    sender: WebhookSender | None = None,
) -> WebhookWorkerParts:
    time = clock or SystemClock()
    outbound = sender or WebhookSender(policy)
    deliverer = WebhookDeliverer(engine, outbound, time, renderer=renderer, settings=settings)

    async def purge_old_events() -> None:
        """Events are kept 30 days; their deliveries and attempts go with them."""
        while True:
            async with engine.begin() as db:
                deleted = await EventRepository(db).delete_older_than(
                    time.now() - EVENT_RETENTION, batch=PURGE_BATCH
                )
            if deleted < PURGE_BATCH:
                return

    async def purge_expired_slots() -> None:
        async with engine.begin() as db:
            await InflightRepository(db).purge_expired(time.now())

    return WebhookWorkerParts(
        handlers={DELIVER_JOB: deliverer.handle},
        given_up={DELIVER_JOB: deliverer.give_up},
        periodic=[
            Periodic("webhooks-purge-old-events", 3600.0, purge_old_events),
            Periodic("webhooks-purge-expired-slots", 300.0, purge_expired_slots),
        ],
        close=outbound.close,
    )
