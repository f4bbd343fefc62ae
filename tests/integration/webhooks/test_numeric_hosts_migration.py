"""Core migration 0051 disables the endpoints saved, before such URLs were refused, with a host
aiohttp never connects to: an IPv4 address spelt otherwise than in dotted-decimal form. Each
of their deliveries failed at once, for three days, before the endpoint was disabled as
failing; now it is disabled at the upgrade, saying why, as `remit webhooks endpoints` shows."""

from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.migration import MigrationContext
from alembic.operations import Operations

from remit.storage.embedded import EmbeddedCluster, to_sqlalchemy_url
from remit.storage.migrate import alembic_config, upgrade
from remit.webhooks.grpc import endpoint_message
from remit.webhooks.repository import endpoint_from_mapping
from remit.webhooks.tools import endpoint_line
from tests.support.migration_modules import migration_module
from tests.support.postgres import scratch_database

_BEFORE = "0050_webhook_delivery_generation"
_AFTER = "0051_numeric_host_endpoints"

# (endpoint, URL, status before, whether the upgrade disables it)
ENDPOINTS = [
    ("we_short", "http://127.1/hook", "enabled", True),
    ("we_integer", "http://2130706433:8080/hook", "enabled", True),
    ("we_octal", "https://0177.0.0.1/hook", "enabled", True),
    ("we_trailing_dot", "https://8.8.8.8./hook", "enabled", True),
    ("we_too_many", "https://1.2.3.4.5/hook", "enabled", True),
    ("we_full_width", "https://\uff11\uff12\uff17.1/hook", "enabled", True),
    # aiohttp hands these to the resolver, which reads them as the address: they are
    # delivered wherever that address is allowed, so they are left as they are.
    ("we_hexadecimal", "http://0x7f.1/hook", "enabled", False),
    ("we_dotted", "https://8.8.8.8/hook", "enabled", False),
    ("we_name", "https://hooks.example.com./hook", "enabled", False),
    ("we_digit_name", "https://123.example/hook", "enabled", False),
    ("we_ipv6", "https://[2001:db8::1]/hook", "enabled", False),
    # Disabled already, by its owner: it says so still.
    ("we_by_user", "http://127.1/hook", "disabled", False),
]


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "numeric_hosts") as url:
        yield url


def test_endpoints_whose_host_is_never_connected_to_are_disabled_saying_why(
    scratch_core: str,
) -> None:
    upgrade("core", scratch_core, _BEFORE)
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO accounts (id, created_at, default_currency, raw_card_access, "
            "fee_percent_bps, fee_fixed_minor, available_delay_days, automatic_payouts, "
            "radar_enabled) VALUES ('acct_1', now(), 'usd', false, 290, 30, 2, false, true)"
        )
        for endpoint_id, url, status, _ in ENDPOINTS:
            connection.execute(
                "INSERT INTO webhook_endpoints (id, account_id, url, enabled_events, metadata, "
                "status, disabled_reason, secret, created_at) VALUES (%s, 'acct_1', %s, "
                "'[\"*\"]', '{}', %s, %s, 'whsec_x', now())",
                (endpoint_id, url, status, "by_user" if status == "disabled" else None),
            )
        connection.execute(
            "INSERT INTO webhook_endpoints (id, account_id, url, enabled_events, metadata, "
            "status, secret, created_at, deleted_at) VALUES ('we_deleted', 'acct_1', "
            "'http://127.1/hook', '[\"*\"]', '{}', 'enabled', 'whsec_x', now(), now())"
        )
    upgrade("core", scratch_core, _AFTER)
    with psycopg.connect(scratch_core) as connection:
        cursor = connection.cursor(row_factory=psycopg.rows.dict_row)
        rows = {row["id"]: row for row in cursor.execute("SELECT * FROM webhook_endpoints")}

    for endpoint_id, url, status, disabled in ENDPOINTS:
        expected = ("disabled", "url_invalid") if disabled else (
            status, "by_user" if status == "disabled" else None
        )  # fmt: skip
        row = rows[endpoint_id]
        assert (row["status"], row["disabled_reason"]) == expected, endpoint_id
        assert row["url"] == url
    assert rows["we_deleted"]["status"] == "enabled"  # gone already: nothing delivers to it

    listed = endpoint_line(endpoint_message(endpoint_from_mapping(rows["we_short"])))
    assert listed == "we_short  disabled (url_invalid)  http://127.1/hook"


def test_the_downgrade_leaves_them_disabled_as_the_earlier_version_would_have(
    scratch_core: str,
) -> None:
    """The earlier version knows no `url_invalid`: it would have disabled such an endpoint as
    failing, three days on."""
    upgrade("core", scratch_core, _BEFORE)
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        connection.execute("SET session_replication_role = replica")  # no account needed
        connection.execute(
            "INSERT INTO webhook_endpoints (id, account_id, url, enabled_events, metadata, "
            "status, secret, created_at) VALUES ('we_short', 'acct_1', 'http://127.1/hook', "
            "'[\"*\"]', '{}', 'enabled', 'whsec_x', now())"
        )
    upgrade("core", scratch_core, _AFTER)
    command.downgrade(alembic_config("core", scratch_core), _BEFORE)
    with psycopg.connect(scratch_core) as connection:
        row = connection.execute("SELECT status, disabled_reason FROM webhook_endpoints").fetchone()
    assert row == ("disabled", "failing")


def test_an_endpoint_whose_url_is_fixed_while_the_migration_runs_stays_enabled(
    scratch_core: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The endpoints are read, then disabled: an earlier core still running may give one a URL
    it connects to in between, and the endpoint must not be disabled for the URL it had."""
    upgrade("core", scratch_core, _BEFORE)
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        connection.execute("SET session_replication_role = replica")  # no account needed
        for endpoint_id, url in (("we_fixed", "http://127.1/hook"), ("we_left", "http://127.1/x")):
            connection.execute(
                "INSERT INTO webhook_endpoints (id, account_id, url, enabled_events, metadata, "
                "status, secret, created_at) VALUES (%s, 'acct_1', %s, '[\"*\"]', '{}', "
                "'enabled', 'whsec_x', now())",
                (endpoint_id, url),
            )

    migration = migration_module("core", _AFTER)
    read_as = migration.never_connected_to

    def fixed_meanwhile(url: str) -> bool:
        # Called once the endpoints are read: the earlier core's update commits then.
        with psycopg.connect(scratch_core, autocommit=True) as other_core:
            other_core.execute(
                "UPDATE webhook_endpoints SET url = 'http://127.0.0.1/hook' WHERE id = 'we_fixed'"
            )
        return bool(read_as(url))

    monkeypatch.setattr(migration, "never_connected_to", fixed_meanwhile)
    engine = sa.create_engine(to_sqlalchemy_url(scratch_core), poolclass=sa.pool.NullPool)
    try:
        with (
            engine.begin() as migrating,
            Operations.context(MigrationContext.configure(migrating)),
        ):
            migration.upgrade()
    finally:
        engine.dispose()

    with psycopg.connect(scratch_core) as connection:
        rows = connection.execute(
            "SELECT id, url, status, disabled_reason FROM webhook_endpoints ORDER BY id"
        ).fetchall()
    assert rows == [
        ("we_fixed", "http://127.0.0.1/hook", "enabled", None),
        ("we_left", "http://127.1/x", "disabled", "url_invalid"),
    ]
