"""What the worker process runs for webhooks: the delivery job, the periodic clean-ups and the
repair of deliveries left with no job."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import Clock, SystemClock
from remit.webhooks import repair
from remit.webhooks.deleted import END_JOB, EndingHandler
from remit.webhooks.delivery import DeliverySettings, WebhookDeliverer
from remit.webhooks.domain import EVENT_RETENTION
from remit.webhooks.outbox import DELIVER_JOB
from remit.webhooks.parking import hand_free_slots_to_parked
from remit.webhooks.rendering import Renderer
from remit.webhooks.repository import EventRepository, InflightRepository
from remit.webhooks.sender import WebhookSender
from remit.webhooks.urls import UrlPolicy
from remit.worker.alone import run_alone
from remit.worker.runner import JobHandler, JobPreparer, Periodic

PURGE_BATCH = 1000
FREE_EXPIRED_SLOTS = "webhooks-free-expired-slots"
# A parked delivery whose endpoint's slot was held by a worker that died waits for the slot's
# lease (45 s) and at most this long after it.
FREE_EXPIRED_SLOTS_INTERVAL_S = 15.0


@dataclass
class WebhookWorkerParts:
    handlers: dict[str, JobHandler]
    given_up: dict[str, JobHandler]
    periodic: list[Periodic]
    close: Callable[[], Awaitable[None]]
    # The longest step of a delivery job (its POST), which the job's lease must outlast.
    longest_step_s: float
    # The kinds that wait on endpoints, for the worker's slots of their own
    # (`remit.worker.runner.Worker.network_kinds`), and their steps taken before the job's
    # transaction is opened (`Worker.preparers`).
    network_kinds: frozenset[str] = frozenset()
    preparers: dict[str, JobPreparer] = field(default_factory=dict)


def delivery_sender(policy: UrlPolicy) -> WebhookSender:
    """The worker's HTTP client, with no bound of its own on the POSTs in flight: the
    worker's delivery slots bound them (`remit.config.worker_delivery_slots`, up to 1024),
    and each endpoint's slots too. A lower bound would keep a delivery waiting for a
    connection, its job's run outlasting what its lease allows for one POST."""
    return WebhookSender(policy, max_connections=None)


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
    outbound = sender or delivery_sender(policy)
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

    slots = settings or DeliverySettings()

    async def free_expired_slots() -> None:
        """Slots whose lease ran out (their worker died) are free: each is handed to a
        delivery parked for one, oldest first. It also wakes deliveries whose wake-up went
        astray (a worker of an earlier version lets slots go without handing them over).

        The expired slots go in a transaction of their own: the hand-over waits for its
        endpoints' locks, and must not hold slots' row locks meanwhile (a parker holding an
        endpoint's lock may be waiting for one of them)."""
        now = time.now()
        async with engine.begin() as db:
            await InflightRepository(db).purge_expired(now)
        async with engine.begin() as db:
            await hand_free_slots_to_parked(
                db,
                limit=slots.max_concurrent_per_endpoint,
                now=now,
                lease_until=now + slots.slot_lease,
            )

    async def repair_once() -> None:
        await repair.repair_deliveries_without_job(engine, now=time.now())

    async def repair_deliveries_without_job() -> None:
        # Two copies at once would read the same deliveries, and could each stage a job for
        # one (neither sees the other's before it commits): harmless, and for nothing.
        await run_alone(engine, repair.TASK, repair_once)

    return WebhookWorkerParts(
        handlers={DELIVER_JOB: deliverer.handle, END_JOB: EndingHandler(time)},
        given_up={DELIVER_JOB: deliverer.give_up},
        periodic=[
            Periodic("webhooks-purge-old-events", 3600.0, purge_old_events),
            Periodic(FREE_EXPIRED_SLOTS, FREE_EXPIRED_SLOTS_INTERVAL_S, free_expired_slots),
            Periodic(repair.TASK, repair.INTERVAL_S, repair_deliveries_without_job),
        ],
        close=outbound.close,
        longest_step_s=outbound.timeout_s,
        network_kinds=frozenset({DELIVER_JOB}),
        preparers={DELIVER_JOB: deliverer.prepare},
    )
