"""`remit serve`, each process alone (`remit core`, ...) and `remit migrate` started without a
database they need say so in one line per database: which setting, where (never the
password), which processes need it and what the server or the network answered; with no
traceback, and an exit code a service manager acts on: 75 (EX_TEMPFAIL) when it was out of
reach, so try again later, 2 when a setting is missing or the server refused it."""

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.support.commands import remit
from tests.support.postgres import WorkerDatabases

pytestmark = pytest.mark.anyio


async def test_serve_names_each_database_out_of_reach_and_exits_75(tmp_path: Path) -> None:
    ran = await remit("serve", "--api-port", "0", tmp_path=tmp_path)
    assert ran.returncode == 75
    failures = [line for line in ran.failure_lines() if " ERROR " in line]
    assert [line.split(": ", 1)[1].split(" (")[0] for line in failures] == [
        "could not start: the core database",
        "could not start: the vault database",
        "could not start: the acquirer database",
    ]
    assert "(DATABASE_URL postgresql://127.0.0.1:" in failures[0]
    assert (
        "/remit_core, needed by core and worker) is out of reach: Connection refused"
        in (failures[0])
    )
    assert "needed by vault) is out of reach: Connection refused" in failures[1]
    assert "needed by acquirer) is out of reach: Connection refused" in failures[2]


async def test_serve_given_a_database_the_server_does_not_have_exits_2(
    databases: WorkerDatabases, tmp_path: Path
) -> None:
    missing = make_url(databases.core_url).set(database="remit_no_such_database")
    ran = await remit(
        "serve", "--api-port", "0", tmp_path=tmp_path,
        DATABASE_URL=missing.render_as_string(hide_password=False),
        VAULT_DATABASE_URL=databases.vault_url, ACQUIRER_DATABASE_URL=databases.acquirer_url,
    )  # fmt: skip
    assert ran.returncode == 2
    [failure] = [line for line in ran.failure_lines() if " ERROR " in line]
    assert failure.endswith(
        'needed by core and worker) refused the connection: database "remit_no_such_database" '
        "does not exist"
    )


@pytest.mark.parametrize(
    ("role", "database", "setting"),
    [("core", "core", "DATABASE_URL"), ("worker", "core", "DATABASE_URL"),
     ("vault", "vault", "VAULT_DATABASE_URL"),
     ("acquirer", "acquirer", "ACQUIRER_DATABASE_URL")],
)  # fmt: skip
async def test_a_process_started_without_its_database_exits_75_in_one_line(
    role: str, database: str, setting: str, tmp_path: Path
) -> None:
    ran = await remit(role, tmp_path=tmp_path, REMIT_CORE_PORT="0", REMIT_VAULT_PORT="0",
                      REMIT_ACQUIRER_PORT="0")  # fmt: skip
    assert ran.returncode == 75
    line = ran.failure_line()
    assert f" ERROR remit.bootstrap: remit {role}: the {database} database ({setting} " in line
    assert line.endswith("is out of reach: Connection refused")


@pytest.mark.parametrize("role", ["core", "worker"])
async def test_a_process_without_its_database_setting_exits_2_in_one_line(
    role: str, tmp_path: Path
) -> None:
    ran = await remit(role, tmp_path=tmp_path, DATABASE_URL="")
    assert ran.returncode == 2
    assert ran.failure_line().endswith(
        f"remit {role}: DATABASE_URL is not set and no embedded database was started"
    )
