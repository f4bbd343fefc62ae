"""`remit serve` whose embedded PostgreSQL will not start, or one of whose ports another program
holds, or given a process count or a mutual-TLS file it cannot use, and each process alone on
a port in use or without its mutual-TLS file: one line naming what failed, no traceback,
and the exit code of `remit.serve` (1 a process, the embedded database among them, did not
come up; 2 a setting is wrong: a port no server can listen on is one)."""

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.commands import remit
from tests.support.postgres import WorkerDatabases
from tests.support.tls import make_tls, tls_env

pytestmark = pytest.mark.anyio


@pytest.fixture
def port_in_use() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def _errors(lines: list[str]) -> list[str]:
    return [line for line in lines if " ERROR " in line]


async def test_serve_whose_embedded_postgresql_does_not_start_says_why_and_exits_1(
    tmp_path: Path,
) -> None:
    # A data directory PostgreSQL cannot start on: it claims a cluster, but holds no files.
    cluster = tmp_path / "pg-core"
    cluster.mkdir()
    (cluster / "PG_VERSION").write_text("16\n")
    ran = await remit("serve", "--api-port", "0", tmp_path=tmp_path, DATABASE_URL="",
                      ACQUIRER_DATABASE_URL="")  # fmt: skip
    assert ran.returncode == 1, ran.stderr
    lines = ran.failure_lines()
    [failure] = _errors(lines)
    assert failure.endswith(
        f"could not start: the embedded PostgreSQL in {cluster} did not start: could not "
        f'access the server configuration file "{cluster}/postgresql.conf": No such file or '
        f"directory (its log: {cluster}/log)"
    )
    # pgserver's own account (its command lines, the whole server log) is not repeated.
    assert not [line for line in lines if "pgserver" in line], ran.stderr


async def test_serve_whose_data_directory_cannot_be_made_says_so_and_exits_2(
    tmp_path: Path,
) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    ran = await remit("serve", "--api-port", "0", tmp_path=tmp_path,
                      REMIT_DATA_DIR=str(not_a_directory / "data"))  # fmt: skip
    assert ran.returncode == 2
    assert ran.failure_line() == (
        f"remit serve: the data directory {not_a_directory / 'data'} (REMIT_DATA_DIR, "
        "--data-dir) cannot be used: Not a directory"
    )


@pytest.mark.parametrize("role", ["api", "core", "vault", "acquirer"])
async def test_serve_with_a_port_in_use_names_it_and_exits_2_before_starting_anything(
    role: str, port_in_use: int, tmp_path: Path
) -> None:
    setting = f"REMIT_{role.upper()}_PORT"
    api_port = str(port_in_use) if role == "api" else "0"
    ran = await remit("serve", "--api-port", api_port, tmp_path=tmp_path,
                      **{setting: str(port_in_use)})  # fmt: skip
    assert ran.returncode == 2
    assert ran.failure_line() == (
        f"remit serve: the {role} cannot listen on 127.0.0.1:{port_in_use} "
        f"(REMIT_{role.upper()}_HOST, {setting}): Address already in use"
    )
    # Refused before anything started: no database was asked for, none started.
    assert not (tmp_path / "pg-core").exists()


@pytest.mark.parametrize("role", ["api", "core", "vault", "acquirer"])
async def test_a_process_on_a_port_in_use_says_so_in_one_line_and_exits_2(
    role: str, port_in_use: int, databases: WorkerDatabases, tmp_path: Path
) -> None:
    ran = await remit(
        role, tmp_path=tmp_path, DATABASE_URL=databases.core_url,
        VAULT_DATABASE_URL=databases.vault_url, ACQUIRER_DATABASE_URL=databases.acquirer_url,
        **{f"REMIT_{role.upper()}_PORT": str(port_in_use)},
    )  # fmt: skip
    assert ran.returncode == 2, ran.stderr
    [failure] = _errors(ran.failure_lines())
    assert failure.endswith(
        f"remit {role}: cannot listen on 127.0.0.1:{port_in_use}: Address already in use"
    )
    # Nor gRPC's own line about it.
    assert "Failed to add port" not in ran.stderr


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (("--api-workers", "0"), {}, "REMIT_API_WORKERS must be between 1 and 64, got '0'"),
        ((), {"REMIT_API_WORKERS": "\u00b2"},
         "REMIT_API_WORKERS must be between 1 and 64, got '²'"),
        ((), {"REMIT_CORE_PROCESSES": "\u00b9"},
         "REMIT_CORE_PROCESSES must be between 1 and 64, got '¹'"),
    ],
)  # fmt: skip
async def test_serve_with_a_process_count_it_cannot_use_says_so_and_exits_2(
    args: tuple[str, ...], env: dict[str, str], line: str, tmp_path: Path
) -> None:
    ran = await remit("serve", "--api-port", "0", *args, tmp_path=tmp_path, **env)
    assert ran.returncode == 2, ran.stderr
    assert ran.failure_line() == f"remit serve: {line}"
    assert not (tmp_path / "pg-core").exists()


@pytest.mark.parametrize("command", ["serve", "core"])
async def test_a_mutual_tls_file_missing_is_named_in_one_line_with_exit_2(
    command: str, tmp_path: Path
) -> None:
    tls = tls_env(make_tls(tmp_path / "tls"))
    missing = tmp_path / "tls" / "gone.crt"
    ran = await remit(command, tmp_path=tmp_path, **{**tls, "REMIT_INTERNAL_TLS_CA": str(missing)})
    assert ran.returncode == 2, ran.stderr
    assert ran.failure_line() == (
        f"remit {command}: REMIT_INTERNAL_TLS_CA {missing} cannot be read: FileNotFoundError"
    )
