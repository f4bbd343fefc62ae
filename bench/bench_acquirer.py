"""Authorizations per second through the gRPC stub against a real `remit acquirer` process.

Set-up: an embedded PostgreSQL (fresh, under a temporary directory) holding only the acquirer
database, and one `remit acquirer` process on 127.0.0.1 with every fault off. Sixteen client
tasks on one grpc.aio channel each send Authorize calls (auth-only, a fresh reference each, the
4242 test card) back to back. After a warm-up, the measured run stops at a fixed number of
calls or a time limit, whichever comes first; latency is the client-side round trip. The
acquirer process's own CPU time (user + system, from /proc) over the measured run, divided by
the calls, is the figure that does not depend on what else loads the machine.
"""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.result import Figure, percentile
from remit.config import TOKEN_ENV
from remit.storage.embedded import start_cluster
from remit.storage.migrate import upgrade
from remit_api.acquirer.v1 import acquirer_pb2 as pb
from remit_api.acquirer.v1 import acquirer_pb2_grpc

NAME = "acquirer"
CONCURRENCY = 16
WARMUP_CALLS = 300
MEASURED_CALLS = 6000
TIME_LIMIT_S = 30.0
STARTUP_TIMEOUT_S = 30.0
FAULT_ENV = (
    "REMIT_ACQUIRER_LATENCY_MS",
    "REMIT_ACQUIRER_ERROR_RATE",
    "REMIT_ACQUIRER_TIMEOUT_RATE",
    "REMIT_ACQUIRER_LOST_RESPONSE_RATE",
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _request(run: str, n: int) -> pb.AuthorizeRequest:
    return pb.AuthorizeRequest(
        reference=f"bench-{run}-{n}",
        card_number="4242424242424242",
        exp_month=12,
        exp_year=2034,
        cvc="123",
        amount=1000 + n % 500,
        currency="usd",
        merchant_id="acct_1BenchMerchant",
    )


async def _wait_serving(target: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    async with grpc.aio.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"remit acquirer exited with {process.returncode}")
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.1)
    raise RuntimeError("remit acquirer did not start in time")


async def _drive(
    target: str, run: str, calls: int, time_limit_s: float
) -> tuple[list[float], float]:
    """Runs `calls` authorizations over CONCURRENCY tasks; returns latencies (ms) and elapsed."""
    latencies_ms: list[float] = []
    counter = iter(range(calls))
    stop_at = time.monotonic() + time_limit_s
    async with grpc.aio.insecure_channel(target) as channel:
        stub = acquirer_pb2_grpc.AcquirerServiceStub(channel)

        async def worker() -> None:
            for n in counter:
                if time.monotonic() > stop_at:
                    return
                started = time.perf_counter()
                reply = await stub.Authorize(_request(run, n), timeout=10)
                latencies_ms.append((time.perf_counter() - started) * 1000)
                if not reply.result.approved:
                    raise RuntimeError(f"authorization declined: {reply.result.code}")

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.monotonic() - started
    return latencies_ms, elapsed


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="rb-acq-") as scratch:
        cluster = start_cluster(Path(scratch) / "pg", on_last_exit="delete")
        process: subprocess.Popen[bytes] | None = None
        try:
            cluster.ensure_database("remit_acquirer")
            url = cluster.url("remit_acquirer")
            upgrade("acquirer", url)
            port = _free_port()
            # An acquirer on its own, as the bench reaches it: no faults, no internal token.
            env = {
                key: value
                for key, value in os.environ.items()
                if key not in FAULT_ENV and key != TOKEN_ENV
            }
            env.update(
                ACQUIRER_DATABASE_URL=url,
                REMIT_ACQUIRER_HOST="127.0.0.1",
                REMIT_ACQUIRER_PORT=str(port),
                REMIT_DATA_DIR=scratch,
                REMIT_INTERNAL_AUTH="off",
            )
            process = subprocess.Popen(
                [sys.executable, "-m", "remit", "acquirer"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            target = f"127.0.0.1:{port}"

            async def measure(process: subprocess.Popen[bytes]) -> tuple[list[float], float, float]:
                await _wait_serving(target, process)
                await _drive(target, "warmup", WARMUP_CALLS, TIME_LIMIT_S)
                cpu_before = _process_cpu_s(process.pid)
                latencies, elapsed = await _drive(target, "measured", MEASURED_CALLS, TIME_LIMIT_S)
                return latencies, elapsed, _process_cpu_s(process.pid) - cpu_before

            latencies_ms, elapsed_s, cpu_s = asyncio.run(measure(process))
        finally:
            if process is not None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            cluster.stop()
    return [
        Figure(NAME, f"authorizations/s, concurrency {CONCURRENCY}",
               len(latencies_ms) / elapsed_s, "ops/s"),
        Figure(NAME, "authorize latency p50", percentile(latencies_ms, 0.50), "ms"),
        Figure(NAME, "authorize latency p99", percentile(latencies_ms, 0.99), "ms"),
        Figure(NAME, "acquirer process CPU per authorization",
               cpu_s / len(latencies_ms) * 1000, "ms"),
        Figure(NAME, "calls measured", float(len(latencies_ms)), "calls"),
    ]  # fmt: skip
