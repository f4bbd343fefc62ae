"""Run platform processes one by one (`remit core`, `remit api`, ...), so a test can kill and
restart any of them."""

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from remit.config import TOKEN_ENV
from remit.supervisor import Child, await_ready, spawn_process

READY_TIMEOUT_S = 60.0


@dataclass
class ProcessSet:
    env: dict[str, str]
    log_dir: Path
    children: dict[str, Child] = field(default_factory=dict)

    def start(self, role: str, extra_env: Mapping[str, str] | None = None) -> Child:
        env = {**self.env, **(extra_env or {})}
        log = (self.log_dir / f"{role}.log").open("ab")
        child = spawn_process(role, env, stdout=log)
        log.close()
        await_ready(child, time.monotonic() + READY_TIMEOUT_S)
        self.children[role] = child
        return child

    def kill(self, role: str) -> None:
        child = self.children.pop(role)
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGKILL)
        child.process.wait(timeout=10)

    def wait_for_exit(self, role: str, timeout_s: float = 30.0) -> int:
        child = self.children.pop(role)
        return child.process.wait(timeout=timeout_s)

    def stop_all(self) -> None:
        for role in list(self.children)[::-1]:
            child = self.children.pop(role)
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
            try:
                child.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')}"
            for path in sorted(self.log_dir.glob("*.log"))
        )


@contextmanager
def process_set(env: dict[str, str], log_dir: Path) -> Iterator[ProcessSet]:
    """Processes started one by one share the platform's internal token through their
    environment (`env`'s, else a new one), as an operator's would; `remit serve` makes its own
    in the data directory instead."""
    processes = ProcessSet(env={TOKEN_ENV: secrets.token_urlsafe(32), **env}, log_dir=log_dir)
    try:
        yield processes
    finally:
        processes.stop_all()
