"""Run the real `remit` as a subprocess, as an operator's script runs it, with the platform's
secrets in its environment: to check what it prints when it fails, and with what exit code."""

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port

PASSWORD = "pw-n0t-f0r-stderr"
TOKEN = "internal-token-n0t-f0r-stderr-0123456789abcdef"


def unreachable_url(database: str) -> str:
    return f"postgresql://remit:{PASSWORD}@127.0.0.1:{free_port()}/{database}"


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str

    def failure_line(self) -> str:
        """The one line a failure must be, with nothing secret in it."""
        assert self.stderr.count("\n") == 1, self.stderr
        return self.failure_lines()[0]

    def failure_lines(self) -> list[str]:
        """The lines on stderr, with no traceback and nothing secret among them."""
        assert "Traceback" not in self.stderr, self.stderr
        assert PASSWORD not in self.stderr
        assert TOKEN not in self.stderr
        return self.stderr.strip().splitlines()


async def remit(*args: str, tmp_path: Path, **env: str) -> Ran:
    """`remit ARGS` with the platform's secrets in its environment, as an operator has them:
    the internal token and database URLs with a password (none of them reachable unless
    `env` says otherwise)."""
    process = await start_remit(*args, tmp_path=tmp_path, **env)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


async def start_remit(*args: str, tmp_path: Path, **env: str) -> asyncio.subprocess.Process:
    """`remit ARGS` started as `remit` describes, its output piped."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("REMIT_") and not name.endswith("DATABASE_URL")
    }
    environment.update(
        REMIT_DATA_DIR=str(tmp_path),
        REMIT_INTERNAL_TOKEN=TOKEN,
        DATABASE_URL=unreachable_url("remit_core"),
        VAULT_DATABASE_URL=unreachable_url("remit_vault"),
        ACQUIRER_DATABASE_URL=unreachable_url("remit_acquirer"),
        REMIT_CORE_PORT=str(free_port()),
        REMIT_VAULT_PORT=str(free_port()),
    )
    environment.update(env)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "remit", *args, env=environment,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
