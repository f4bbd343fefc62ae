"""A whole platform (`remit serve`) for a benchmark: embedded PostgreSQL in a fresh temporary
data directory, every process on free 127.0.0.1 ports, the default test account's keys."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from remit.config import saved_token
from remit.grpcutil.internal_auth import InternalAccess

STARTUP_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class BenchPlatform:
    api_base: str
    core_target: str
    account_id: str
    secret_key: str
    data_dir: Path
    serve_pid: int

    @property
    def internal_token(self) -> str | None:
        """The token `remit serve` made for its processes (gRPC callers must show it)."""
        return saved_token(self.data_dir)

    @property
    def internal_access(self) -> InternalAccess:
        """How a caller from outside reaches the platform's gRPC services as one of its own."""
        return InternalAccess(self.internal_token)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_platform(extra_env: dict[str, str] | None = None) -> Iterator[BenchPlatform]:
    with tempfile.TemporaryDirectory(prefix="remit-bench-") as scratch:
        data_dir = Path(scratch) / "data"
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("REMIT_") and not name.endswith("DATABASE_URL")
        }
        env.update({"REMIT_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"})
        for role in ("api", "core", "vault", "acquirer"):
            env[f"REMIT_{role.upper()}_PORT"] = str(_free_port())
        env.update(extra_env or {})
        log_path = Path(scratch) / "serve.log"
        with log_path.open("wb") as log:
            serve = subprocess.Popen(
                [sys.executable, "-m", "remit", "serve"], env=env, stdout=log, stderr=log
            )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while "remit is running" not in log_path.read_text(errors="replace"):
                if serve.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"remit serve did not start:\n{log_path.read_text()}")
                time.sleep(0.2)
            account = json.loads((data_dir / "default-account.json").read_text())
            yield BenchPlatform(
                api_base=f"http://127.0.0.1:{env['REMIT_API_PORT']}",
                core_target=f"127.0.0.1:{env['REMIT_CORE_PORT']}",
                account_id=account["id"],
                secret_key=account["secret_key"],
                data_dir=data_dir,
                serve_pid=serve.pid,
            )
        finally:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(timeout=60)
            except subprocess.TimeoutExpired:
                serve.kill()
