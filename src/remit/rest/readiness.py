"""Whether the facade can serve: `GET /readyz`, for load balancers, beside `GET /healthz`.

`/healthz` says the process is alive and answering HTTP, nothing more: the supervisor waits on
it at start-up, and a restart would not mend a core that is down. `/readyz` says whether the
facade can carry requests out: it asks the core's gRPC health service, with a short deadline,
and answers 503 naming what does not answer, so a load balancer sends requests elsewhere.

Load balancers poll it often, from many places: the answer is kept for `CACHE_S`, and callers
that ask while a check is under way wait for that check, so polling costs the core at most one
health check per second per api process, however many poll.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

CHECK_TIMEOUT_S: Final = 0.5
CACHE_S: Final = 1.0

Check = Callable[[], Awaitable[bool]]


def grpc_serving(channel: Callable[[], grpc.aio.Channel]) -> Check:
    """A check that the server behind `channel()` answers its health check SERVING in time."""

    async def check() -> bool:
        stub = health_pb2_grpc.HealthStub(channel())
        try:
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=""), timeout=CHECK_TIMEOUT_S
            )
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    return check


class Readiness:
    """The dependencies, by name, that did not answer their last check."""

    def __init__(
        self,
        checks: Mapping[str, Check],
        *,
        cache_s: float = CACHE_S,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._checks = dict(checks)
        self._cache_s = cache_s
        self._now = now
        self._lock = asyncio.Lock()
        self._checked_at: float | None = None
        self._unavailable: list[str] = []

    async def unavailable(self) -> list[str]:
        async with self._lock:
            if self._checked_at is None or self._now() - self._checked_at >= self._cache_s:
                self._unavailable = [name for name, check in self._checks.items()
                                     if not await check()]  # fmt: skip
                self._checked_at = self._now()
            return list(self._unavailable)

    async def endpoint(self, _request: Request) -> Response:
        unavailable = await self.unavailable()
        headers = {"Cache-Control": "no-store"}
        if unavailable:
            return JSONResponse({"status": "unavailable", "unavailable": unavailable}, 503, headers)
        return JSONResponse({"status": "ready"}, 200, headers)
