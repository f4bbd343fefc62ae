"""The vault: tokenizations per second and forwarded authorizations per second.

A real vault process (`python -m remit vault`) on an embedded PostgreSQL of its own, driven
over gRPC by 16 concurrent callers from this process. Forwarded authorizations go to an
in-bench fake AcquirerService (tests/support/fake_acquirer.py: approves, records) on
127.0.0.1, so the figure measures the vault (decryption, audit write taking and destroying the
CVC, forward, idempotency record) plus one local gRPC hop, not a real acquirer's work.
"""

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO

import grpc

from bench.result import Figure
from remit.config import TOKEN_ENV, Endpoint
from remit.storage.embedded import start_cluster
from remit.storage.migrate import upgrade
from remit.supervisor import grpc_healthy
from remit_api.vault.v1 import vault_pb2, vault_pb2_grpc
from tests.support.fake_acquirer import running_acquirer
from tests.support.ports import free_port

CONCURRENCY = 16
TOKENIZE_SECONDS = 10.0
FORWARD_SECONDS = 10.0
NAME = "vault"
NUMBERS = ("4242424242424242", "5555555555554444", "4000056655665556", "2223003122003222")


async def _drive(
    seconds: float, call: Callable[[int], Awaitable[None]], concurrency: int = CONCURRENCY
) -> float:
    """Run `call(i)` from `concurrency` workers for `seconds`; return completed calls per second."""
    deadline = time.monotonic() + seconds
    done = 0

    async def worker(offset: int) -> None:
        nonlocal done
        index = offset
        while time.monotonic() < deadline:
            await call(index)
            done += 1
            index += concurrency

    started = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return done / (time.monotonic() - started)


async def _measure(target: str) -> list[Figure]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = vault_pb2_grpc.VaultServiceStub(channel)
        tokens: list[str] = []

        async def tokenize(index: int) -> None:
            reply = await stub.TokenizeCard(
                vault_pb2.TokenizeCardRequest(
                    account_id="acct_bench", number=NUMBERS[index % len(NUMBERS)],
                    exp_month=12, exp_year=2035, cvc="123", requester="bench",
                )
            )  # fmt: skip
            tokens.append(reply.vault_token)

        await _drive(1.0, tokenize)  # warm-up: connections, prepared statements
        tokenized = await _drive(TOKENIZE_SECONDS, tokenize)

        async def forward(index: int) -> None:
            reply = await stub.ForwardAuthorization(
                vault_pb2.ForwardAuthorizationRequest(
                    account_id="acct_bench", vault_token=tokens[index % len(tokens)],
                    destination="acquirer", amount=1000, currency="usd",
                    reference=f"op_bench_{index}_{time.monotonic_ns()}", capture=True,
                    purpose="bench", requester="bench",
                )
            )  # fmt: skip
            assert reply.result.approved

        forwarded = await _drive(FORWARD_SECONDS, forward)
    return [
        Figure(NAME, f"TokenizeCard, concurrency {CONCURRENCY}", tokenized, "ops/s"),
        Figure(
            NAME,
            f"ForwardAuthorization (fake acquirer), concurrency {CONCURRENCY}",
            forwarded,
            "ops/s",
        ),
    ]


async def _run(scratch: Path, database_url: str, log: IO[bytes]) -> list[Figure]:
    async with running_acquirer() as (_acquirer, acquirer_target):
        port = free_port()
        env = {
            # A vault on its own, as its clients here reach it: no internal token.
            **{k: v for k, v in os.environ.items() if k != TOKEN_ENV},
            "VAULT_DATABASE_URL": database_url,
            "REMIT_DATA_DIR": str(scratch / "data"),
            "REMIT_VAULT_HOST": "127.0.0.1",
            "REMIT_VAULT_PORT": str(port),
            "REMIT_VAULT_DESTINATIONS": f"acquirer={acquirer_target}",
            "REMIT_INTERNAL_AUTH": "off",
        }
        vault = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "remit", "vault", env=env, stdout=log, stderr=log
        )
        try:
            endpoint = Endpoint("127.0.0.1", port)
            deadline = time.monotonic() + 60
            while not await asyncio.to_thread(grpc_healthy, endpoint, 1.0):
                if vault.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError("the vault process did not start; see its log")
                await asyncio.sleep(0.2)
            return await _measure(endpoint.target)
        finally:
            vault.terminate()
            await asyncio.wait_for(vault.wait(), timeout=30)


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="remit-bench-vault-") as scratch_dir:
        scratch = Path(scratch_dir)
        cluster = start_cluster(scratch / "pg")
        try:
            cluster.ensure_database("remit_vault")
            url = cluster.url("remit_vault")
            upgrade("vault", url)
            with (scratch / "vault.log").open("wb") as log:
                try:
                    return asyncio.run(_run(scratch, url, log))
                except RuntimeError:
                    print((scratch / "vault.log").read_text(errors="replace"), file=sys.stderr)
                    raise
        finally:
            cluster.stop()
