"""A real HTTP webhook receiver on 127.0.0.1 for tests: records every request and answers from
a script (status, headers, optional delay), so tests see exactly what a merchant's server sees."""

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import web


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = "ok"
    # Sent as it is instead of `body` when set: bytes no text holds (a gzip stream, a NUL).
    raw_body: bytes | None = None
    delay_s: float = 0.0
    # Set to hold the request open until the test releases it (or the connection dies).
    hold: asyncio.Event | None = None


@dataclass(frozen=True)
class Received:
    body: bytes
    headers: dict[str, str]
    at: float


class Receiver:
    def __init__(self, script: Sequence[Reply] | Callable[[int], Reply] = ()) -> None:
        self._script = script
        self.received: list[Received] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def _reply_for(self, index: int) -> Reply:
        if callable(self._script):
            return self._script(index)
        return self._script[index] if index < len(self._script) else Reply()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        index = len(self.received)
        self.received.append(Received(body, dict(request.headers), time.monotonic()))
        self.arrived.set()
        reply = self._reply_for(index)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if reply.hold is not None:
                await reply.hold.wait()
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
        finally:
            self.in_flight -= 1
        if reply.raw_body is not None:
            return web.Response(status=reply.status, body=reply.raw_body, headers=reply.headers)
        return web.Response(status=reply.status, text=reply.body, headers=reply.headers)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, count: int, timeout_s: float = 30.0) -> None:
        """Until `count` requests have come: only a sender that never sends them waits long."""
        deadline = time.monotonic() + timeout_s
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"received {len(self.received)} of {count} requests")
            await asyncio.sleep(0.02)
