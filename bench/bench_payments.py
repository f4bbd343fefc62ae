"""Confirmed card payments per second, and their latency, through REST and through gRPC.

Set-up: the whole platform (`remit serve`: api, core, vault, acquirer, worker) on an embedded
PostgreSQL with fsync on, everything on this machine, the acquirer at zero latency. Each
payment is one `POST /v1/payment_intents` with `confirm=true`, `pm_card_visa` and its own
Idempotency-Key (or the same `CreatePaymentIntent` through the grpc.aio stub with the key in
metadata), 16 at a time. The loader is aiohttp (REST) or grpc.aio (gRPC) in this process; its
own CPU time is reported beside each figure, so a saturated loader would show. The account
has Radar off: one test card paying thousands of times a minute is exactly what Radar's
velocity rules block (bench_radar.py measures Radar's own cost).
"""

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import psutil

from bench.platform import BenchPlatform, running_platform
from bench.result import Figure, percentile
from remit.grpcutil.internal_auth import internal_channel, internal_sync_channel
from remit_api.accounts.v1 import accounts_pb2, accounts_pb2_grpc
from remit_api.payments.v1 import payments_pb2 as pb
from remit_api.payments.v1 import payments_pb2_grpc

NAME = "payments"
CONCURRENCY = 16
WARMUP = 100
MEASURED = 1500
TIME_LIMIT_S = 60.0


@dataclass(frozen=True)
class Load:
    """How many payments, how many at a time, and a name that keeps their keys apart from
    another run's (a reused key would replay instead of paying)."""

    name: str
    concurrency: int = CONCURRENCY
    warmup: int = WARMUP
    measured: int = MEASURED


# One payment at a time: its latency with no queue in front of it, the floor under p99.
ALONE = Load("alone", concurrency=1, warmup=20, measured=300)
REST, GRPC = Load("rest"), Load("grpc")


async def _drive(
    pay: Callable[[int], Awaitable[None]], count: int, offset: int, concurrency: int
) -> tuple[float, list[float], float]:
    """Run `count` payments, `concurrency` at a time; return (seconds, latencies in ms, loader
    CPU s)."""
    latencies: list[float] = []
    next_index = offset
    deadline = time.monotonic() + TIME_LIMIT_S

    async def worker() -> None:
        nonlocal next_index
        while next_index < offset + count and time.monotonic() < deadline:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            await pay(index)
            latencies.append((time.perf_counter() - started) * 1000)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - wall, latencies, time.process_time() - cpu


async def _rest(platform: BenchPlatform, load: Load = REST) -> tuple[float, list[float], float]:
    headers = {"Authorization": f"Bearer {platform.secret_key}"}
    connector = aiohttp.TCPConnector(limit=load.concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def pay(n: int) -> None:
            async with session.post(
                f"{platform.api_base}/v1/payment_intents",
                data={
                    "amount": "1999",
                    "currency": "usd",
                    "payment_method": "pm_card_visa",
                    "confirm": "true",
                    "return_url": "https://shop.example/return",
                },
                headers={"Idempotency-Key": f"bench-{load.name}-{n}"},
            ) as response:
                body = await response.json()
                if response.status != 200 or body.get("status") != "succeeded":
                    raise RuntimeError(f"payment {n} failed: {response.status} {body}")

        await _drive(pay, load.warmup, 0, load.concurrency)
        return await _drive(pay, load.measured, load.warmup, load.concurrency)


async def _grpc(platform: BenchPlatform, load: Load = GRPC) -> tuple[float, list[float], float]:
    async with internal_channel(platform.core_target, platform.internal_access) as channel:
        stub = payments_pb2_grpc.PaymentsServiceStub(channel)

        async def pay(n: int) -> None:
            reply = await stub.CreatePaymentIntent(
                pb.CreatePaymentIntentRequest(
                    amount=1999, currency="usd", payment_method="pm_card_visa", confirm=True
                ),
                metadata=(
                    ("remit-account-id", platform.account_id),
                    ("idempotency-key", f"bench-{load.name}-{n}"),
                ),
                timeout=30,
            )
            if reply.payment_intent.status != pb.PAYMENT_INTENT_STATUS_SUCCEEDED:
                raise RuntimeError(f"payment {n} did not succeed")

        await _drive(pay, load.warmup, 0, load.concurrency)
        return await _drive(pay, load.measured, load.warmup, load.concurrency)


class MachineBusy:
    """The share of the machine's CPU time (all cores, every process, the kernel included)
    spent busy across a run, from /proc/stat: near 1, the run is CPU-bound, and throughput can
    only grow by spending less CPU per payment."""

    def __init__(self) -> None:
        self._before = self._sample()

    @staticmethod
    def _sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            ticks = [int(field) for field in stat.readline().split()[1:]]
        idle = ticks[3] + ticks[4]  # idle and iowait
        return sum(ticks) - idle, sum(ticks)

    def share(self) -> float:
        busy, total = self._sample()
        return (busy - self._before[0]) / max(1, total - self._before[1])

    def per_payment_ms(self, payments: int) -> float:
        """The machine's busy CPU time across the run, per payment: the figure to compare
        versions by. Per-process figures miss the CPU of processes that exit during the run
        (database backends a pool closes) and the kernel's work for no process in particular."""
        busy, _ = self._sample()
        ticks_per_s = os.sysconf("SC_CLK_TCK")
        return (busy - self._before[0]) / ticks_per_s / max(1, payments) * 1000


class ProcessCpu:
    """CPU time of each platform process (and of PostgreSQL) across a run, to say where the
    time of a payment goes: the processes are CPU-bound, so this is what limits throughput.
    Processes are looked up again at the end: database backends start as pools grow."""

    def __init__(self, serve_pid: int, data_dir: Path) -> None:
        self._serve_pid = serve_pid
        self._data_dir = str(data_dir)
        self._before = self._sample()

    def _processes(self) -> list[tuple[str, psutil.Process]]:
        found = [
            (" ".join(p.cmdline()[-1:]), p)
            for p in psutil.Process(self._serve_pid).children(recursive=True)
        ]
        # The embedded PostgreSQL servers detach from `remit serve`; find them by data directory.
        for process in psutil.process_iter(["name", "cmdline"]):
            cmdline = process.info["cmdline"] or []
            if process.info["name"] == "postgres" and any(self._data_dir in a for a in cmdline):
                for member in [process, *process.children(recursive=True)]:
                    found.append(("postgres (both clusters)", member))
        return found

    def _sample(self) -> dict[int, tuple[str, float]]:
        sample: dict[int, tuple[str, float]] = {}
        for role, process in self._processes():
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            sample[process.pid] = (role, times.user + times.system)
        return sample

    def per_payment_ms(self, payments: int) -> dict[str, float]:
        totals: dict[str, float] = {}
        for pid, (role, cpu) in self._sample().items():
            spent = cpu - self._before.get(pid, (role, 0.0))[1]
            totals[role] = totals.get(role, 0.0) + spent / payments * 1000
        return dict(sorted(totals.items()))


def _figures(through: str, seconds: float, latencies: list[float], cpu_s: float) -> list[Figure]:
    count = len(latencies)
    return [
        Figure(NAME, f"confirmed payments per second through {through}", count / seconds, "/s"),
        Figure(NAME, f"{through} latency p50", percentile(latencies, 0.50), "ms"),
        Figure(NAME, f"{through} latency p99", percentile(latencies, 0.99), "ms"),
        Figure(NAME, f"{through} loader CPU per payment", cpu_s / count * 1000, "ms"),
    ]


def _account_without_radar(platform: BenchPlatform) -> BenchPlatform:
    with internal_sync_channel(platform.core_target, platform.internal_access) as channel:
        reply = accounts_pb2_grpc.AccountsServiceStub(channel).CreateAccount(
            accounts_pb2.CreateAccountRequest(default_currency="usd", radar_enabled=False),
            timeout=10,
        )
    return replace(platform, account_id=reply.account.id, secret_key=reply.secret_key)


def _cpu_figures(through: str, cpu: ProcessCpu, payments: int) -> list[Figure]:
    return [
        Figure(NAME, f"{through}: CPU per payment in {role}", ms, "ms")
        for role, ms in cpu.per_payment_ms(payments).items()
    ]


def _machine_cpu_figure(through: str, machine: MachineBusy, payments: int) -> Figure:
    label = f"{through}: machine CPU per payment (all processes and the kernel)"
    return Figure(NAME, label, machine.per_payment_ms(payments), "ms")


def run() -> list[Figure]:
    with running_platform() as started:
        platform = _account_without_radar(started)
        # The figures count warm-up and measured payments alike; both are the same request.
        cpu, machine = ProcessCpu(platform.serve_pid, platform.data_dir), MachineBusy()
        rest = asyncio.run(_rest(platform))
        rest_cpu = _cpu_figures("REST", cpu, WARMUP + len(rest[1]))
        busy = Figure(NAME, "REST: machine CPU busy (all cores)", machine.share() * 100, "%")
        machine_cpu = _machine_cpu_figure("REST", machine, WARMUP + len(rest[1]))
        cpu, machine = ProcessCpu(platform.serve_pid, platform.data_dir), MachineBusy()
        grpc_run = asyncio.run(_grpc(platform))
        grpc_cpu = _cpu_figures("gRPC", cpu, WARMUP + len(grpc_run[1]))
        grpc_machine_cpu = _machine_cpu_figure("gRPC", machine, WARMUP + len(grpc_run[1]))
        _, alone, _ = asyncio.run(_rest(platform, ALONE))
    return [
        *_figures("REST", *rest),
        *rest_cpu,
        busy,
        machine_cpu,
        *_figures("gRPC", *grpc_run),
        *grpc_cpu,
        grpc_machine_cpu,
        Figure(NAME, "REST one at a time: latency p50", percentile(alone, 0.50), "ms"),
        Figure(NAME, "REST one at a time: latency p99", percentile(alone, 0.99), "ms"),
    ]
