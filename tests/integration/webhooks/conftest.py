"""A webhooks test bench: a real database, the real service and worker, an injected clock."""

import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.clock import FixedClock
from remit.grpcutil.errors import ErrorMappingInterceptor
from remit.webhooks.delivery import DeliverySettings
from remit.webhooks.domain import DeliveryAttempt, WebhookEndpoint
from remit.webhooks.grpc import WebhooksServicer
from remit.webhooks.outbox import record_event
from remit.webhooks.rendering import Renderer
from remit.webhooks.repository import DeliveryRepository
from remit.webhooks.service import PageArgs, WebhooksService
from remit.webhooks.stream import EventNotifier
from remit.webhooks.urls import UrlPolicy
from remit.webhooks.worker import webhook_worker_parts
from remit.worker.runner import Worker
from remit_api.webhooks.v1 import webhooks_pb2_grpc
from tests.support.receiver import Receiver, Reply


class RolledBackError(Exception):
    """Raised inside a transaction to roll it back."""


@dataclass
class Bench:
    engine: AsyncEngine
    clock: FixedClock
    service: WebhooksService
    worker: Worker
    account_id: str

    async def endpoint(
        self, url: str, events: Sequence[str] = ("*",), api_version: str | None = None
    ) -> WebhookEndpoint:
        return await self.service.create_endpoint(
            self.account_id, url=url, enabled_events=list(events), api_version=api_version
        )

    async def record(self, event_type: str = "customer.created", **fields: object) -> str:
        async with self.engine.begin() as db:
            return await record_event(
                db,
                account_id=self.account_id,
                type=event_type,
                data_object={"id": "cus_123", "object": "customer", "balance": 0, **fields},
                now=self.clock.now(),
                request_id="req_abc",
                idempotency_key="key-1",
            )

    async def record_then_roll_back(self) -> None:
        """Record a payout.paid event in a transaction that then rolls back."""
        with contextlib.suppress(RolledBackError):
            async with self.engine.begin() as db:
                await record_event(db, account_id=self.account_id, type="payout.paid",
                                   data_object={"id": "po_1", "object": "payout"},
                                   now=self.clock.now())  # fmt: skip
                raise RolledBackError

    async def attempts(self, event_id: str) -> list[DeliveryAttempt]:
        found, _ = await self.service.list_attempts(
            self.account_id, event_id=event_id, endpoint_id=None, args=PageArgs(limit=100)
        )
        return list(reversed(found))

    async def follow_schedule(self, event_id: str, endpoint_id: str) -> None:
        """Run the worker, jumping the clock to each retry, until the delivery is finished."""
        while True:
            await self.worker.drain()
            async with self.engine.connect() as db:
                delivery = await DeliveryRepository(db).get(self.account_id, event_id, endpoint_id)
            assert delivery is not None
            if delivery.next_attempt_at is None:
                return
            self.clock.advance((delivery.next_attempt_at - self.clock.now()).total_seconds())

    async def delivery_status(self, event_id: str, endpoint_id: str) -> str:
        async with self.engine.connect() as db:
            delivery = await DeliveryRepository(db).get(self.account_id, event_id, endpoint_id)
        assert delivery is not None
        return delivery.status.value


StartReceiver = Callable[..., Awaitable[Receiver]]


@pytest.fixture
async def bench(core_engine: AsyncEngine) -> AsyncIterator[Bench]:
    async with make_bench(core_engine) as made:
        yield made


def make_bench(
    engine: AsyncEngine,
    *,
    start: datetime | None = None,
    settings: DeliverySettings | None = None,
    policy: UrlPolicy | None = None,
    renderer: Renderer | None = None,
) -> "BenchContext":
    return BenchContext(engine, start or datetime.now(UTC), settings, policy, renderer)


# Retries and wake-ups fall at random within their jitter: a bench draws from a generator of
# its own, seeded, so that a test's times are the same on every run (tests check them against
# the jitter's range, not against one draw).
JITTER_SEED = 20260101


def seeded(settings: DeliverySettings) -> DeliverySettings:
    """`settings` drawing from a seeded generator, unless the test chose its own draws."""
    if settings.draw is not random.random:
        return settings
    return replace(settings, draw=random.Random(JITTER_SEED).random)


class BenchContext:
    def __init__(
        self,
        engine: AsyncEngine,
        start: datetime,
        settings: DeliverySettings | None,
        policy: UrlPolicy | None,
        renderer: Renderer | None = None,
    ) -> None:
        self._engine, self._start = engine, start
        self._settings = seeded(settings or DeliverySettings())
        self._renderer = renderer
        self._policy = policy or UrlPolicy(allow_internal=True)
        self._close: tuple[Callable[[], Awaitable[None]], ...] = ()

    async def __aenter__(self) -> Bench:
        clock = FixedClock(self._start)
        account = await AccountsService(self._engine, clock).create_account()
        service = WebhooksService(self._engine, policy=self._policy, clock=clock)
        parts = webhook_worker_parts(self._engine, self._policy, clock=clock,
                                     settings=self._settings, renderer=self._renderer)  # fmt: skip
        self._close = (service.close, parts.close)
        # Wired as `remit.worker.registry` wires it: deliveries in slots of their own, each
        # POST made before its job's transaction opens.
        worker = Worker(
            engine=self._engine,
            handlers=parts.handlers,
            clock=clock,
            given_up=parts.given_up,
            network_kinds=parts.network_kinds,
            preparers=parts.preparers,
        )
        return Bench(self._engine, clock, service, worker, account.account.id)

    async def __aexit__(self, *_: object) -> None:
        for close in self._close:
            await close()


@pytest.fixture
async def start_receiver() -> AsyncIterator[StartReceiver]:
    started: list[Receiver] = []

    async def start(script: Sequence[Reply] | Callable[[int], Reply] = ()) -> Receiver:
        receiver = Receiver(script)
        await receiver.start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        await receiver.stop()


@pytest.fixture
async def stub(bench: Bench) -> AsyncIterator["webhooks_pb2_grpc.WebhooksServiceAsyncStub"]:
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    webhooks_pb2_grpc.add_WebhooksServiceServicer_to_server(
        WebhooksServicer(bench.service, EventNotifier("postgresql://unused")), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        async_stub: webhooks_pb2_grpc.WebhooksServiceAsyncStub = (
            webhooks_pb2_grpc.WebhooksServiceStub(channel)
        )
        yield async_stub
    finally:
        await channel.close()
        await server.stop(0)
