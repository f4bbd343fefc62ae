"""One embedded PostgreSQL cluster per test run, shared by the xdist workers, and a set of
databases per worker so workers never see each other's rows."""

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from remit.storage.embedded import EmbeddedCluster, start_cluster
from remit.storage.migrate import upgrade

# Durability is not what the tests exercise; these make each commit cheap.
_FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}
# Each worker's shared e2e platform keeps its pooled connections while a module's own platform
# (at times two) runs beside it, on every worker at once: PostgreSQL's default of 100 runs out,
# and the platforms answer "too many connections" as a temporary database problem.
_MAX_CONNECTIONS = 300


@dataclass(frozen=True)
class WorkerDatabases:
    core_url: str
    vault_url: str
    acquirer_url: str
    # The key file of every vault process on `vault_url`: the database records which key set
    # its cards are sealed under, and a vault with another refuses to start
    # (`remit.vault.key_check`), as it would beside a production database.
    vault_key_file: Path


def _run_id() -> str:
    raw = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"solo{os.getpid()}"
    return re.sub(r"[^a-zA-Z0-9]", "", raw)[:12]


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def start_test_cluster() -> EmbeddedCluster:
    # A short path: PostgreSQL's Unix socket lives in the data directory and socket paths are
    # limited to about 100 bytes.
    base = Path(tempfile.gettempdir())
    data_dir = base / f"remit-pg-{_run_id()}"
    with _file_lock(base / f"remit-pg-{_run_id()}.lock"):
        cluster = start_cluster(data_dir, on_last_exit="delete")
        for name, value in _FAST_SETTINGS.items():
            cluster.execute_admin(f"ALTER SYSTEM SET {name} = '{value}';")
        cluster.execute_admin("SELECT pg_reload_conf();")
        _allow_connections(cluster, _MAX_CONNECTIONS)
    return cluster


def _allow_connections(cluster: EmbeddedCluster, wanted: int) -> None:
    """Raise max_connections to `wanted`, which takes a restart: done by the first worker to
    start the cluster, under the lock, before any test connects; the others find it done."""
    shown = re.search(r"^\s*(\d+)\s*$", cluster.execute_admin("SHOW max_connections;"), re.M)
    if shown is not None and int(shown.group(1)) >= wanted:
        return
    cluster.execute_admin(f"ALTER SYSTEM SET max_connections = '{wanted}';")
    from pgserver._commands import POSTGRES_BIN_PATH

    server = cluster._server  # pgserver's handle: where and as whom it runs the cluster
    # pg_ctl restart starts it again with the options of its last start (postmaster.opts).
    subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-w", "-m", "fast", "-D", str(server.pgdata),
         "-l", str(server.log), "restart"],
        user=server.system_user, check=True, capture_output=True, timeout=60,
    )  # fmt: skip


@contextmanager
def worker_databases(cluster: EmbeddedCluster, worker: str) -> Iterator[WorkerDatabases]:
    """The worker's databases, made afresh, with a vault key file of their own (made by the
    first vault process to start on them), which goes with them."""
    names = {kind: f"remit_test_{worker}_{kind}" for kind in ("core", "vault", "acquirer")}
    for name in names.values():
        cluster.execute_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);')
        cluster.execute_admin(f'CREATE DATABASE "{name}";')
    keys = Path(tempfile.gettempdir()) / f"remit-vault-keys-{_run_id()}-{worker}"
    shutil.rmtree(keys, ignore_errors=True)
    databases = WorkerDatabases(
        core_url=cluster.url(names["core"]),
        vault_url=cluster.url(names["vault"]),
        acquirer_url=cluster.url(names["acquirer"]),
        vault_key_file=keys / "keys.json",
    )
    upgrade("core", databases.core_url)
    upgrade("vault", databases.vault_url)
    upgrade("acquirer", databases.acquirer_url)
    try:
        yield databases
    finally:
        shutil.rmtree(keys, ignore_errors=True)


@contextmanager
def scratch_database(cluster: EmbeddedCluster, purpose: str) -> Iterator[str]:
    """An empty database of this worker's own for one test (named after `purpose`), dropped
    afterwards; its URL in libpq's form, which psycopg takes and the migrations take too."""
    name = f"remit_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{purpose}"
    cluster.execute_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);')
    cluster.execute_admin(f'CREATE DATABASE "{name}";')
    try:
        yield cluster.url(name).replace("postgresql+psycopg://", "postgresql://", 1)
    finally:
        cluster.execute_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);')
