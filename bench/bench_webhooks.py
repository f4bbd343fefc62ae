"""Webhook delivery: deliveries per second to a local receiver, and the latency from an event's
commit to its first delivery.

Everything is real except the network distance: an embedded PostgreSQL, the worker's job loop
and delivery handler (aiohttp client, HMAC signing, attempt recording), and a receiver in its
own process on 127.0.0.1 answering 200 at once.

- throughput: N events recorded up front for one endpoint, then the worker drains them; each
  delivery is one claimed job, one POST, one recorded attempt.
- latency: a worker running as in production (woken by NOTIFY), events recorded one at a time
  at a modest rate; the time from commit to the receiver's arrival stamp (same clock).
"""

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from bench.result import Figure, percentile
from remit.accounts.service import AccountsService
from remit.core.clock import SystemClock
from remit.storage.embedded import start_cluster
from remit.storage.engine import dispose, make_engine
from remit.storage.migrate import upgrade
from remit.webhooks.delivery import DeliverySettings
from remit.webhooks.outbox import record_event
from remit.webhooks.service import WebhooksService
from remit.webhooks.urls import UrlPolicy
from remit.webhooks.worker import webhook_worker_parts
from remit.worker.runner import Worker, libpq_url

NAME = "webhooks"
THROUGHPUT_EVENTS = 2000
LATENCY_EVENTS = 200
LATENCY_INTERVAL_S = 0.02

_RECEIVER = r"""
import asyncio, sys
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


async def _throughput(url: str, receiver_url: str) -> list[Figure]:
    engine = make_engine(url, pool_size=20)
    policy = UrlPolicy(allow_internal=True)
    settings = DeliverySettings(max_concurrent_per_endpoint=64)
    parts = webhook_worker_parts(engine, policy, settings=settings)
    try:
        account = (await AccountsService(engine).create_account()).account.id
        service = WebhooksService(engine, policy=policy)
        await service.create_endpoint(account, url=receiver_url, enabled_events=["*"])
        await service.close()
        data = {"id": "cus_bench", "object": "customer", "balance": 0, "email": "a@example.com"}
        async with engine.begin() as db:
            for _ in range(THROUGHPUT_EVENTS):
                await record_event(db, account_id=account, type="customer.updated",
                                   data_object=data, now=datetime.now(UTC))  # fmt: skip
        worker = Worker(engine=engine, handlers=parts.handlers)
        cpu0, started = time.process_time(), time.perf_counter()
        delivered = await worker.drain()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu0
    finally:
        await parts.close()
        await dispose(engine)
    return [
        Figure(NAME, "deliveries per second (one worker process)", delivered / elapsed, "/s"),
        Figure(NAME, "worker CPU per delivery", 1000 * cpu / delivered, "ms"),
    ]


async def _latency(url: str) -> list[Figure]:
    arrivals: dict[str, float] = {}
    all_arrived = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        arrivals[body["id"]] = time.monotonic()
        if len(arrivals) >= LATENCY_EVENTS:
            all_arrived.set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    engine = make_engine(url, pool_size=20)
    policy = UrlPolicy(allow_internal=True)
    parts = webhook_worker_parts(engine, policy)
    stop = asyncio.Event()
    worker = Worker(engine=engine, handlers=parts.handlers, clock=SystemClock())
    running = asyncio.create_task(worker.run_forever(libpq_url(url), stop))
    committed: dict[str, float] = {}
    try:
        account = (await AccountsService(engine).create_account()).account.id
        service = WebhooksService(engine, policy=policy)
        await service.create_endpoint(account, url=f"http://127.0.0.1:{port}/hook",
                                      enabled_events=["*"])  # fmt: skip
        await service.close()
        await asyncio.sleep(0.5)  # the worker is listening
        for _ in range(LATENCY_EVENTS):
            async with engine.begin() as db:
                event_id = await record_event(
                    db, account_id=account, type="customer.created",
                    data_object={"id": "cus_1", "object": "customer"}, now=datetime.now(UTC),
                )  # fmt: skip
            committed[event_id] = time.monotonic()
            await asyncio.sleep(LATENCY_INTERVAL_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_arrived.wait(), timeout=30)
    finally:
        stop.set()
        await running
        await parts.close()
        await dispose(engine)
        await runner.cleanup()
    samples = [1000 * (arrivals[e] - committed[e]) for e in committed if e in arrivals]
    if len(samples) < LATENCY_EVENTS:
        raise RuntimeError(f"only {len(samples)} of {LATENCY_EVENTS} events arrived")
    return [
        Figure(NAME, "event commit to first delivery p50", percentile(samples, 0.50), "ms"),
        Figure(NAME, "event commit to first delivery p99", percentile(samples, 0.99), "ms"),
    ]


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="remit-bench-") as scratch:
        cluster = start_cluster(Path(scratch) / "pg", on_last_exit="delete")
        receiver = subprocess.Popen(
            [sys.executable, "-c", _RECEIVER], stdout=subprocess.PIPE, text=True, env=os.environ
        )
        try:
            assert receiver.stdout is not None
            receiver_url = f"http://127.0.0.1:{int(receiver.stdout.readline())}/hook"
            figures: list[Figure] = []
            for name, measure in (("throughput", None), ("latency", None)):
                del measure
                cluster.ensure_database(f"bench_{name}")
                url = cluster.url(f"bench_{name}")
                upgrade("core", url)
                if name == "throughput":
                    figures += asyncio.run(_throughput(url, receiver_url))
                else:
                    figures += asyncio.run(_latency(url))
            return figures
        finally:
            receiver.terminate()
            receiver.wait()
            cluster.stop()
