"""A database that cannot be used is named in one line: which setting, where (never the
password), which processes need it, and what the server or the network answered."""

import psycopg
import pytest

from remit.config import from_env
from remit.storage.reachability import (
    DatabasesUnavailableError,
    check_all_reachable,
    core_database,
    failure_of,
    location_of,
    platform_databases,
    unavailability_reason,
)
from tests.support.ports import free_port

PASSWORD = "pw-n0t-f0r-the-l0g"


@pytest.mark.parametrize(
    ("url", "location"),
    [
        (f"postgresql://remit:{PASSWORD}@db.internal:5432/remit_core",
         "postgresql://db.internal:5432/remit_core"),
        (f"postgresql+psycopg://remit:{PASSWORD}@[::1]:5433/remit_vault",
         "postgresql://[::1]:5433/remit_vault"),
        # A password may hold what a generic URL parser takes for the URL's later parts.
        (f"postgres://remit:{PASSWORD}#/?@db/remit", "postgresql://db/remit"),
        ("postgresql+psycopg://postgres:@/remit_core?host=/data/pg-core",
         "postgresql:///remit_core?host=/data/pg-core"),
    ],
)  # fmt: skip
def test_a_database_is_located_without_its_user_and_password(url: str, location: str) -> None:
    assert location_of(url) == location


def test_the_reason_is_what_the_network_answered_without_the_drivers_framing() -> None:
    port = free_port()
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(f"postgresql://remit:{PASSWORD}@127.0.0.1:{port}/remit_core")
    assert unavailability_reason(refused.value) == "Connection refused"


@pytest.mark.parametrize(
    ("answer", "reason", "setting_refused"),
    [
        ('connection failed: connection to server at "db" (10.0.0.5), port 5432 failed: '
         'FATAL:  password authentication failed for user "remit"',
         'password authentication failed for user "remit"', True),
        ('connection failed: connection to server on socket "/run/pg/.s.PGSQL.5432" failed: '
         'FATAL:  database "remit_cor" does not exist', 'database "remit_cor" does not exist',
         True),
        ('connection failed: connection to server at "db", port 5432 failed: FATAL:  no '
         'pg_hba.conf entry for host "10.0.0.9", user "remit"',
         'no pg_hba.conf entry for host "10.0.0.9", user "remit"', True),
        ('connection failed: connection to server at "db", port 5432 failed: FATAL:  the '
         "database system is starting up", "the database system is starting up", False),
        ('connection failed: connection to server at "db", port 5432 failed: FATAL:  sorry, '
         "too many clients already", "sorry, too many clients already", False),
        ("failed to resolve host 'db': [Errno -2] Name or service not known",
         "failed to resolve host 'db': [Errno -2] Name or service not known", False),
        ('connection failed: connection to server at "db", port 5432 failed: timeout expired',
         "timeout expired", False),
    ],
)  # fmt: skip
def test_a_refused_user_password_or_database_is_a_setting_to_fix_anything_else_may_pass(
    answer: str, reason: str, setting_refused: bool
) -> None:
    config = from_env({"DATABASE_URL": f"postgresql://remit:{PASSWORD}@db:5432/remit_core"})
    failure = failure_of(core_database(config), psycopg.OperationalError(answer))
    assert failure.reason == reason
    assert failure.setting_refused is setting_refused
    verb = "refused the connection" if setting_refused else "is out of reach"
    assert failure.line == (
        "the core database (DATABASE_URL postgresql://db:5432/remit_core, needed by core and "
        f"worker) {verb}: {reason}"
    )


def test_every_database_out_of_reach_is_named_on_a_line_of_its_own() -> None:
    unreachable = {
        name: f"postgresql://remit:{PASSWORD}@127.0.0.1:{free_port()}/remit_{name}"
        for name in ("core", "vault", "acquirer")
    }
    config = from_env(
        {
            "DATABASE_URL": unreachable["core"],
            "VAULT_DATABASE_URL": unreachable["vault"],
            "ACQUIRER_DATABASE_URL": unreachable["acquirer"],
        }
    )
    with pytest.raises(DatabasesUnavailableError) as out_of_reach:
        check_all_reachable(platform_databases(config))
    lines = out_of_reach.value.lines
    assert [line.split(" (")[0] for line in lines] == [
        "the core database", "the vault database", "the acquirer database"
    ]  # fmt: skip
    assert all(line.endswith("is out of reach: Connection refused") for line in lines)
    assert "needed by vault)" in lines[1]
    assert not any(PASSWORD in line for line in lines)
    assert not out_of_reach.value.settings_refused
