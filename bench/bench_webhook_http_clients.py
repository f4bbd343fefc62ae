"""The outbound HTTP client for webhook delivery, chosen by measurement: client-process CPU per
POST for httpx's AsyncClient and aiohttp's ClientSession, 3000 POSTs of a 1.5 KB event at 64
concurrent connections to a receiver in another process on 127.0.0.1 that answers 200 at once.
"""

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx

from bench.bench_webhooks import _RECEIVER
from bench.result import Figure

NAME = "webhook_http_clients"
REQUESTS = 3000
CONNECTIONS = 64
WARM_UP = 200

_BODY = json.dumps({"id": "evt_x", "object": "event", "data": {"object": {"k": "v" * 1500}}})
_HEADERS = {"Content-Type": "application/json", "Stripe-Signature": "t=1,v1=" + "a" * 64}


async def _measure(one: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    """(CPU ms per request, requests per second)."""
    for _ in range(WARM_UP):
        await one()
    limiter = asyncio.Semaphore(CONNECTIONS)

    async def limited() -> None:
        async with limiter:
            await one()

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(limited() for _ in range(REQUESTS)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return 1000 * cpu / REQUESTS, REQUESTS / wall


async def _httpx(url: str) -> tuple[float, float]:
    limits = httpx.Limits(max_connections=CONNECTIONS)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def one() -> None:
            response = await client.post(url, content=_BODY.encode(), headers=_HEADERS)
            await response.aread()
            assert response.status_code == 200

        return await _measure(one)


async def _aiohttp(url: str) -> tuple[float, float]:
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> None:
            async with session.post(url, data=_BODY.encode(), headers=_HEADERS) as response:
                await response.content.read(512)
                assert response.status == 200

        return await _measure(one)


def run() -> list[Figure]:
    receiver = subprocess.Popen([sys.executable, "-c", _RECEIVER], stdout=subprocess.PIPE,
                                text=True)  # fmt: skip
    try:
        assert receiver.stdout is not None
        url = f"http://127.0.0.1:{int(receiver.stdout.readline())}/hook"
        figures = []
        for client, measure in (("httpx AsyncClient", _httpx), ("aiohttp ClientSession", _aiohttp)):
            cpu_ms, rate = asyncio.run(measure(url))
            figures += [
                Figure(NAME, f"{client}: CPU per request", cpu_ms, "ms"),
                Figure(NAME, f"{client}: requests per second", rate, "/s"),
            ]
        return figures
    finally:
        receiver.terminate()
        receiver.wait()
