"""`remit serve` starts every process and leaves none behind, however it is stopped."""

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest
import stripe

from tests.support.platform import (
    ROLES,
    children_by_role,
    platform_env,
    running_platform,
    stop_platform,
)
from tests.support.postgres import WorkerDatabases
from tests.support.waiting import wait_for

pytestmark = pytest.mark.own_platform(reason="starts platforms of its own and kills them")


def _wait_gone(processes: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(processes, timeout=timeout_s)
    return list(alive)


def _postmaster_running(data_dir: Path) -> bool:
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return False
    return psutil.pid_exists(int(pid_file.read_text().splitlines()[0]))


def test_sigterm_stops_every_process_and_the_embedded_databases() -> None:
    with tempfile.TemporaryDirectory(prefix="remit-") as scratch:
        data_dir = Path(scratch)
        env = platform_env_without_databases(data_dir)
        log = data_dir / "serve.log"
        with log.open("wb") as out:
            serve = subprocess.Popen(
                [sys.executable, "-m", "remit", "serve"], env=env, stdout=out, stderr=out
            )
        try:
            wait_for(lambda: "remit is running" in log.read_text(), 90, log.read_text)
            children = children_by_role(serve.pid)
            assert set(children) == ROLES
            saved = json.loads((data_dir / "default-account.json").read_text())
            assert saved["secret_key"] in log.read_text()
            assert (data_dir / "default-account.json").stat().st_mode & 0o077 == 0
            assert _postmaster_running(data_dir / "pg-core")
            assert _postmaster_running(data_dir / "pg-vault")

            serve.send_signal(signal.SIGTERM)
            assert serve.wait(timeout=60) == 0
            assert _wait_gone(list(children.values()), 30) == []
            assert not _postmaster_running(data_dir / "pg-core")
            assert not _postmaster_running(data_dir / "pg-vault")
        finally:
            if serve.poll() is None:
                serve.kill()


def platform_env_without_databases(data_dir: Path) -> dict[str, str]:
    env = platform_env_for_embedded(data_dir)
    for name in ("DATABASE_URL", "VAULT_DATABASE_URL", "ACQUIRER_DATABASE_URL"):
        env.pop(name, None)
    return env


def platform_env_for_embedded(data_dir: Path) -> dict[str, str]:
    from tests.support.ports import free_port

    env = {**os.environ, "REMIT_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    for role in ("api", "core", "vault", "acquirer"):
        env[f"REMIT_{role.upper()}_PORT"] = str(free_port())
    return env


def test_children_die_with_the_supervisor_even_when_it_is_killed(
    databases: WorkerDatabases,
) -> None:
    with running_platform(databases) as platform:
        children = list(children_by_role(platform.process.pid).values())
        assert len(children) == len(ROLES)
        platform.process.send_signal(signal.SIGKILL)
        platform.process.wait(timeout=10)
        assert _wait_gone(children, 60) == []
        stop_platform(platform)


def test_accounts_create_prints_one_json_object_whose_keys_work(
    databases: WorkerDatabases,
) -> None:
    with running_platform(databases) as platform:
        result = subprocess.run(
            [sys.executable, "-m", "remit", "accounts", "create", "--json"],
            env=platform.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        account = json.loads(result.stdout.strip().splitlines()[-1])
        assert set(account) == {"id", "secret_key", "publishable_key"}
        assert account["id"].startswith("acct_")
        client = stripe.StripeClient(
            account["secret_key"], base_addresses={"api": platform.api_base}
        )
        intent = client.v1.payment_intents.create(params={"amount": 100, "currency": "usd"})
        assert intent.status == "requires_payment_method"


def test_accounts_create_works_while_the_platform_is_down(databases: WorkerDatabases) -> None:
    with tempfile.TemporaryDirectory(prefix="remit-") as scratch:
        env = platform_env(databases, Path(scratch))
        result = subprocess.run(
            [sys.executable, "-m", "remit", "accounts", "create", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    account = json.loads(result.stdout.strip().splitlines()[-1])
    assert account["secret_key"].startswith("sk_test_")
    assert account["publishable_key"].startswith("pk_test_")
