"""`/readyz` answers 503 naming the core when the core does not answer its health check, and
200 when it does; its answer is kept for a second, so polling costs the core one check a
second. `/healthz` stays the process's liveness, whatever the core does."""

import asyncio
import functools
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from remit.rest import app as app_module
from remit.rest.app import build_app
from remit.rest.readiness import Readiness
from remit.rest.routes import all_operations
from tests.support.ports import free_port
from tests.support.rest_facade import faked_dependencies

pytestmark = pytest.mark.anyio


def _app(core_channel: grpc.aio.Channel) -> Any:
    async def no_key(_key: str) -> None:
        return None

    deps = faked_dependencies(no_key, core_channel=core_channel)
    return build_app(deps, all_operations())


class CountingHealth(health_aio.HealthServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.checks = 0

    async def Check(  # noqa: N802 (the RPC name)
        self, request: health_pb2.HealthCheckRequest, context: Any
    ) -> health_pb2.HealthCheckResponse:
        self.checks += 1
        return await super().Check(request, context)


async def test_readiness_follows_the_core_and_liveness_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = f"127.0.0.1:{free_port()}"
    async with grpc.aio.insecure_channel(target) as channel:
        transport = httpx.ASGITransport(app=_app(channel))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            unready = await asyncio.wait_for(client.get("/readyz"), 30)
            alive = await client.get("/healthz")
    assert unready.status_code == 503
    assert unready.json() == {"status": "unavailable", "unavailable": ["core"]}
    assert (alive.status_code, alive.text) == (200, "ok")

    # Kept for longer than the second it is kept for in use: the asks below come within one,
    # but a loaded machine may stretch them past it (the second itself is the next test's).
    monkeypatch.setattr(app_module, "Readiness", functools.partial(Readiness, cache_s=3600))
    health = CountingHealth()
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            transport = httpx.ASGITransport(app=_app(channel))
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                answers = await asyncio.gather(*(client.get("/readyz") for _ in range(5)))
                again = await client.get("/readyz")
    finally:
        await server.stop(0)
    assert [answer.status_code for answer in [*answers, again]] == [200] * 6
    assert again.json() == {"status": "ready"}
    assert health.checks == 1, "one check while it is kept, however many ask"


async def test_the_answer_is_checked_again_once_it_is_a_second_old() -> None:
    now = 0.0
    answers = iter([False, True])
    asked = 0

    async def core() -> bool:
        nonlocal asked
        asked += 1
        return next(answers)

    readiness = Readiness({"core": core}, now=lambda: now)
    assert await readiness.unavailable() == ["core"]
    now = 0.9
    assert await readiness.unavailable() == ["core"]
    now = 1.0
    assert await readiness.unavailable() == []
    assert asked == 2
