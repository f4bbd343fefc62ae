"""Core migration 0024: the one rolled secret an endpoint had moves to its list of rolled
secrets if it has not expired; a downgrade keeps the one valid longest."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from remit.webhooks.domain import RolledSecret
from remit.webhooks.repository import rolled_secrets_from_json
from tests.support.postgres import scratch_database

_BEFORE = "0023_webhook_last_success"
VALID_UNTIL = datetime.now(UTC).replace(microsecond=123456) + timedelta(hours=20)
EXPIRED_AT = datetime.now(UTC) - timedelta(hours=1)


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "rolled_secrets") as url:
        upgrade("core", url)
        yield url


def _endpoint(
    connection: "psycopg.Connection[tuple[object, ...]]",
    endpoint_id: str,
    previous: str | None,
    expires_at: datetime | None,
) -> None:
    connection.execute(
        "INSERT INTO webhook_endpoints (id, account_id, url, enabled_events, metadata, status, "
        "secret, previous_secret, previous_secret_expires_at, created_at) VALUES (%s, 'acct_1', "
        "'https://x.example/h', '[\"*\"]', '{}', 'enabled', 'whsec_now', %s, %s, now())",
        (endpoint_id, previous, expires_at),
    )


def test_an_unexpired_rolled_secret_is_kept_and_an_expired_one_dropped(
    scratch_core: str,
) -> None:
    command.downgrade(alembic_config("core", scratch_core), _BEFORE)
    with psycopg.connect(scratch_core) as connection:
        connection.execute("SET session_replication_role = replica")  # rows without parents
        _endpoint(connection, "we_valid", "whsec_old", VALID_UNTIL)
        _endpoint(connection, "we_expired", "whsec_gone", EXPIRED_AT)
        _endpoint(connection, "we_never_rolled", None, None)
    upgrade("core", scratch_core)
    with psycopg.connect(scratch_core) as connection:
        rows = connection.execute("SELECT id, rolled_secrets FROM webhook_endpoints").fetchall()
    kept = {row[0]: rolled_secrets_from_json(row[1]) for row in rows}
    assert kept == {
        "we_valid": (RolledSecret("whsec_old", VALID_UNTIL),),
        "we_expired": (),
        "we_never_rolled": (),
    }

    with psycopg.connect(scratch_core) as connection:
        connection.execute(
            "UPDATE webhook_endpoints SET rolled_secrets = jsonb_build_array("
            "jsonb_build_object('secret', 'whsec_short', 'expires_at', %s::text),"
            "jsonb_build_object('secret', 'whsec_long', 'expires_at', %s::text))"
            " WHERE id = 'we_valid'",
            (VALID_UNTIL.isoformat(), (VALID_UNTIL + timedelta(days=2)).isoformat()),
        )
    command.downgrade(alembic_config("core", scratch_core), _BEFORE)
    with psycopg.connect(scratch_core) as connection:
        slot = connection.execute(
            "SELECT previous_secret, previous_secret_expires_at FROM webhook_endpoints "
            "WHERE id = 'we_valid'"
        ).fetchone()
    assert slot == ("whsec_long", VALID_UNTIL + timedelta(days=2))
