"""What the shape of a payment costs before any payment logic runs: the floor under bench_payments.

A confirmed card payment through remit crosses processes and commits to disk a fixed number of
times whatever the code inside does: one HTTP request (REST only), three gRPC calls (api -> core,
core -> vault, vault -> acquirer) and at least six durable commits (core: the new idempotency
key, the attempt, the network's answer, the outcome; vault: the audit row written before
decryption; acquirer: its record of the operation). This bench measures those pieces bare, on
the same stack (uvloop, grpc.aio, psycopg 3, embedded PostgreSQL with fsync on), 16 at a time:

- an empty gRPC unary call (bytes in, bytes out, no protobuf) to a server in another process:
  CPU of the caller and of the server per call;
- a one-row INSERT committed on its own from psycopg (autocommit, prepared), 16 connections:
  CPU of the client and of PostgreSQL per commit;
- an empty HTTP POST to a uvicorn app in another process from aiohttp: CPU of both per request.

Each is measured with 16 calls in flight and with one.

The floor is the sum for one payment's fixed shape, and the most payments per second two cores
could do if every line of payment logic cost nothing.
"""

import asyncio
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import grpc
import psutil
import psycopg
import uvloop

from bench.platform import _free_port
from bench.result import Figure
from remit.storage.embedded import start_cluster

NAME = "floor"
CALLS = 4_000
CORES = 2
GRPC_HOPS = 3
COMMITS = 6

_GRPC_SERVER = """
import asyncio, sys, grpc, uvloop

async def echo(request, context):
    return request

async def main():
    handler = grpc.method_handlers_generic_handler(
        "floor.Echo", {"Call": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port("127.0.0.1:" + sys.argv[1])
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()

uvloop.run(main())
"""

_HTTP_SERVER = """
import sys, uvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{}"})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
            log_level="info", access_log=False)
"""


async def _concurrently(
    call: Callable[[], Awaitable[object]], count: int, concurrency: int
) -> float:
    """Run `count` calls, `concurrency` at a time; return this process's CPU seconds."""
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.process_time() - started


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


class _Server:
    """A server script in its own process on a free port; its CPU is read with psutil."""

    def __init__(self, script: str, ready: str) -> None:
        self.port = _free_port()
        self._process = subprocess.Popen(
            [sys.executable, "-c", script, str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._ready = ready

    def __enter__(self) -> "_Server":
        assert self._process.stdout is not None
        deadline = time.monotonic() + 30
        while (left := deadline - time.monotonic()) > 0:
            # Wait for output with a timeout: a server that hangs silently must not hang us.
            readable, _, _ = select.select([self._process.stdout], [], [], left)
            if not readable:
                break
            line = self._process.stdout.readline().decode(errors="replace")
            if self._ready in line:
                return self
            if not line and self._process.poll() is not None:
                break
        self._process.kill()
        raise RuntimeError(f"floor server did not start ({self._ready!r} never printed)")

    def __exit__(self, *exc: object) -> None:
        self._process.kill()
        self._process.wait(timeout=30)

    def cpu(self) -> float:
        return _cpu([psutil.Process(self._process.pid)])


async def _grpc_call(server: _Server, concurrency: int) -> tuple[float, float]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            "/floor.Echo/Call"
        )
        payload = b"x" * 200

        async def one() -> object:
            return await call(payload, timeout=10)

        await _concurrently(one, 300, concurrency)
        before = server.cpu()
        client = await _concurrently(one, CALLS, concurrency)
        return client / CALLS, (server.cpu() - before) / CALLS


async def _http_call(server: _Server, concurrency: int) -> tuple[float, float]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        url = f"http://127.0.0.1:{server.port}/v1/payment_intents"
        form = {"amount": "1999", "currency": "usd", "confirm": "true"}

        async def one() -> object:
            async with session.post(url, data=form) as response:
                return await response.read()

        await _concurrently(one, 300, concurrency)
        before = server.cpu()
        client = await _concurrently(one, CALLS, concurrency)
        return client / CALLS, (server.cpu() - before) / CALLS


def _postgres_processes(data_dir: Path) -> list[psutil.Process]:
    found: list[psutil.Process] = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "postgres" and any(str(data_dir) in a for a in cmdline):
            found.extend([process, *process.children(recursive=True)])
    return found


async def _commits(url: str, data_dir: Path, concurrency: int) -> tuple[float, float]:
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    connections = [
        await psycopg.AsyncConnection.connect(conninfo, autocommit=True) for _ in range(concurrency)
    ]
    try:
        await connections[0].execute(
            "CREATE TABLE floor_rows (id bigserial PRIMARY KEY, body text NOT NULL)"
        )
        free = list(connections)

        async def one() -> object:
            connection = free.pop()
            try:
                return await connection.execute(
                    "INSERT INTO floor_rows (body) VALUES (%s)", ("x" * 200,), prepare=True
                )
            finally:
                free.append(connection)

        await _concurrently(one, 300, concurrency)
        server = _postgres_processes(data_dir)
        before = _cpu(server)
        client = await _concurrently(one, CALLS, concurrency)
        return client / CALLS, (_cpu(server) - before) / CALLS
    finally:
        for connection in connections:
            await connection.close()


def _measure_commits(concurrency: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="remit-bench-floor-") as workdir:
        data_dir = Path(workdir) / "pg"
        cluster = start_cluster(data_dir, on_last_exit="delete")
        try:
            cluster.ensure_database("remit_floor")
            return uvloop.run(_commits(cluster.url("remit_floor"), data_dir, concurrency))
        finally:
            cluster.stop()


def _at(concurrency: int) -> list[Figure]:
    with _Server(_GRPC_SERVER, "ready") as server:
        grpc_client, grpc_server = uvloop.run(_grpc_call(server, concurrency))
    with _Server(_HTTP_SERVER, "Uvicorn running") as server:
        http_client, http_server = uvloop.run(_http_call(server, concurrency))
    commit_client, commit_server = _measure_commits(concurrency)
    grpc_floor = GRPC_HOPS * (grpc_client + grpc_server) + COMMITS * (commit_client + commit_server)
    rest_floor = grpc_floor + http_client + http_server
    at = f"{concurrency} at a time"
    us = 1e6
    pieces = [
        ("empty gRPC unary call: caller CPU", grpc_client),
        ("empty gRPC unary call: server CPU", grpc_server),
        ("empty HTTP POST (aiohttp -> uvicorn): client CPU", http_client),
        ("empty HTTP POST: server CPU", http_server),
        ("one-row commit (fsync on): client CPU", commit_client),
        ("one-row commit: PostgreSQL CPU", commit_server),
        (f"payment's shape, gRPC ({GRPC_HOPS} calls, {COMMITS} commits)", grpc_floor),
        ("payment's shape, REST (+ one HTTP request)", rest_floor),
    ]
    return [
        *(Figure(NAME, f"{name}, {at}", seconds * us, "µs") for name, seconds in pieces),
        Figure(NAME, f"payments/s {CORES} cores allow, no payment logic, gRPC, {at}",
               CORES / grpc_floor, "/s"),
        Figure(NAME, f"payments/s {CORES} cores allow, no payment logic, REST, {at}",
               CORES / rest_floor, "/s"),
    ]  # fmt: skip


def run() -> list[Figure]:
    # Many calls in flight share event-loop wake-ups and system calls; one at a time shares
    # nothing. A payment's hops sit between the two.
    return [*_at(16), *_at(1)]
