"""The real `remit acquirer` process and the `remit settlement-report` command."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.acquirer.service import AcquirerService
from remit.config import database_pool_timeout_s
from remit.core.clock import FixedClock
from remit.storage.embedded import to_sqlalchemy_url
from remit_api.acquirer.v1 import acquirer_pb2 as pb
from remit_api.acquirer.v1 import acquirer_pb2_grpc
from tests.integration.acquirer.support import authorization_request
from tests.support.ports import free_port
from tests.support.postgres import WorkerDatabases

pytestmark = pytest.mark.own_platform(
    reason="runs `remit acquirer` alone on the databases and empties the acquirer's after each test"
)

STARTUP_TIMEOUT_S = 90.0  # as the platform's own (tests/support/platform.py)
# The report is of days that are over: the sale settles on one long past.
SETTLED_AT = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)


def _env(databases: WorkerDatabases, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": databases.core_url,
        "VAULT_DATABASE_URL": databases.vault_url,
        "ACQUIRER_DATABASE_URL": databases.acquirer_url,
        "REMIT_DATA_DIR": str(tmp_path),
        # Started alone, with no platform to share a token with: the test calls it directly.
        "REMIT_INTERNAL_AUTH": "off",
    }


def _wait_serving(target: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"remit acquirer exited with {process.returncode}")
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                time.sleep(0.1)
    raise RuntimeError("remit acquirer did not start in time")


def test_the_acquirer_process_takes_its_faults_from_flags(
    databases: WorkerDatabases, tmp_path: Path
) -> None:
    port = free_port()
    log_path = tmp_path / "acquirer.log"
    # Its settlement grace, recorded for `remit settlement-report`, follows from its settings.
    env = {**_env(databases, tmp_path), "REMIT_STATEMENT_TIMEOUT_S": "40"}
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "remit", "acquirer", "--acquirer-host", "127.0.0.1",
             "--acquirer-port", str(port), "--acquirer-error-rate", "1",
             "--acquirer-fault-seed", "5"],
            env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_serving(f"127.0.0.1:{port}", process)
        engine = create_engine(to_sqlalchemy_url(databases.acquirer_url))
        try:
            with engine.connect() as db:
                recorded_ms = db.scalar(text("SELECT grace_ms FROM settlement_grace"))
        finally:
            engine.dispose()
        assert recorded_ms == round((database_pool_timeout_s(env) + 3 * 40 + 2) * 1000)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = acquirer_pb2_grpc.AcquirerServiceStub(channel)
            request = pb.AuthorizeRequest(
                reference="process-1", card_number="4242424242424242", exp_month=12,
                exp_year=2034, amount=100, currency="usd", merchant_id="acct_1Process",
            )  # fmt: skip
            with pytest.raises(grpc.RpcError) as failed:
                stub.Authorize(request, timeout=10)
            assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
            with pytest.raises(grpc.RpcError) as missing:
                stub.LookupOperation(pb.LookupOperationRequest(reference="process-1"), timeout=10)
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=60)
    log = log_path.read_text()
    assert returncode == 0, log
    assert "fault injection is on" in log
    assert "INTERNAL AUTHENTICATION IS OFF" in log
    assert "4242424242424242" not in log


@pytest.mark.anyio
async def test_the_settlement_report_command_prints_csv_and_json(
    databases: WorkerDatabases, acquirer_engine: AsyncEngine, tmp_path: Path
) -> None:
    service = AcquirerService(acquirer_engine, FixedClock(SETTLED_AT))
    await service.authorize(authorization_request(reference="cli-sale", amount_minor=2000,
                                                  capture=True))  # fmt: skip
    env = _env(databases, tmp_path)
    command = [sys.executable, "-m", "remit", "settlement-report", "--date", "2026-03-14"]

    as_json = await anyio.run_process([*command, "--format", "json"], env=env)
    document = json.loads(as_json.stdout)
    assert document["date"] == "2026-03-14"
    assert [(row["reference"], row["amount"], row["fee"]) for row in document["rows"]] == [
        ("cli-sale", 2000, 30)
    ]
    as_csv = await anyio.run_process(command, env=env)
    lines = as_csv.stdout.decode().splitlines()
    assert lines[0].startswith("settled_at,kind,reference")
    # A sale captures all it authorized: it released nothing.
    assert lines[1].endswith(",usd,2000,30,0")
    assert ",capture,cli-sale,auth_" in lines[1]
    assert lines[2:] == [
        "# end date=2026-03-14 rows=1 usd.rows=1 usd.amount=2000 usd.fee=30 usd.released=0"
    ]

    bad = await anyio.run_process([*command[:-1], "14.03.2026"], env=env, check=False)
    assert bad.returncode == 2
    assert b"YYYY-MM-DD" in bad.stderr
