"""Start the real platform (`remit serve`) as a subprocess on free ports, for e2e tests."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg

from remit.config import Endpoint, saved_token
from remit.grpcutil.internal_auth import InternalAccess
from remit.vault.tables import vault_metadata
from remit.worker.runner import libpq_url
from tests.support.ports import free_port
from tests.support.postgres import WorkerDatabases

STARTUP_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class RunningPlatform:
    process: subprocess.Popen[bytes]
    api: Endpoint
    core: Endpoint
    vault: Endpoint
    acquirer: Endpoint
    data_dir: Path
    log_path: Path
    env: dict[str, str]

    @property
    def api_base(self) -> str:
        return f"http://{self.api.target}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def internal_token(self) -> str | None:
        """The token `remit serve` made for its processes (gRPC callers must show it)."""
        return saved_token(self.data_dir)

    @property
    def internal_access(self) -> InternalAccess:
        """How a caller from outside reaches the platform's gRPC services as one of its own."""
        return InternalAccess(self.internal_token)


def platform_env(databases: WorkerDatabases, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": databases.core_url,
        "VAULT_DATABASE_URL": databases.vault_url,
        "ACQUIRER_DATABASE_URL": databases.acquirer_url,
        "REMIT_DATA_DIR": str(data_dir),
        # One key set for the vault database, whichever platform of the worker runs on it.
        "REMIT_VAULT_KEY_FILE": str(databases.vault_key_file),
        "PYTHONUNBUFFERED": "1",
        # The tests' webhook receivers listen on loopback; other internal addresses stay
        # refused, as on a server.
        "REMIT_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
    }
    for role in ("api", "core", "vault", "acquirer"):
        env[f"REMIT_{role.upper()}_HOST"] = "127.0.0.1"
        env[f"REMIT_{role.upper()}_PORT"] = str(free_port())
    env.update(extra)
    return env


def _endpoint(env: dict[str, str], role: str) -> Endpoint:
    upper = role.upper()
    return Endpoint(env[f"REMIT_{upper}_HOST"], int(env[f"REMIT_{upper}_PORT"]))


ROLES = frozenset({"api", "core", "vault", "acquirer", "worker"})


def children_by_role(pid: int) -> dict[str, psutil.Process]:
    """The platform processes `remit serve` (process `pid`) runs, by role (one copy each)."""
    found: dict[str, psutil.Process] = {}
    for child in psutil.Process(pid).children(recursive=True):
        try:
            cmdline = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        if len(cmdline) >= 3 and cmdline[-2] == "remit" and cmdline[-1] in ROLES:
            found[cmdline[-1]] = child
    return found


def forget_earlier_cards(databases: WorkerDatabases) -> None:
    """Empty the vault database of `databases`, which the platforms started on them share,
    with its key file (`WorkerDatabases.vault_key_file`), so that a module's platform starts
    without the cards of earlier modules. A module's own platform (tests/e2e/conftest.py)
    calls this before it starts, when no other platform on `databases` is running; a platform
    a test starts beside its module's must not, or the module's would lose the cards it has
    handed out, and nothing may call it on the databases of the worker's shared platform,
    which runs for the whole session."""
    with psycopg.connect(libpq_url(databases.vault_url), autocommit=True) as db:
        present = {
            row[0]
            for row in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        tables = [name for name in vault_metadata.tables if name in present]
        if tables:
            db.execute("TRUNCATE " + ", ".join(f'"{name}"' for name in tables))


@contextmanager
def running_platform(databases: WorkerDatabases, **extra_env: str) -> Iterator[RunningPlatform]:
    with tempfile.TemporaryDirectory(prefix="remit-e2e-") as scratch:
        data_dir = Path(scratch) / "data"
        log_path = Path(scratch) / "serve.log"
        env = platform_env(databases, data_dir, **extra_env)
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "remit", "serve"],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        platform = RunningPlatform(
            process=process,
            api=_endpoint(env, "api"),
            core=_endpoint(env, "core"),
            vault=_endpoint(env, "vault"),
            acquirer=_endpoint(env, "acquirer"),
            data_dir=data_dir,
            log_path=log_path,
            env=env,
        )
        try:
            _wait_for_banner(platform)
            yield platform
        finally:
            stop_platform(platform)


def _wait_for_banner(platform: RunningPlatform) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if "remit is running" in platform.log_text():
            return
        if platform.process.poll() is not None:
            raise RuntimeError(f"remit serve exited early:\n{platform.log_text()}")
        time.sleep(0.1)
    raise RuntimeError(f"remit serve did not start in time:\n{platform.log_text()}")


def stop_platform(platform: RunningPlatform, timeout_s: float = 30.0) -> int:
    if platform.process.poll() is None:
        platform.process.send_signal(signal.SIGTERM)
        try:
            return platform.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            platform.process.kill()
            platform.process.wait()
            raise
    return platform.process.returncode
