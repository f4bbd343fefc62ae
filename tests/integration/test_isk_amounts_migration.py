"""Core migration 0089 and acquirer migration 0007 stop the upgrade of a database that holds
isk amounts stored while isk was counted in whole krónur, until the operator sets
REMIT_STORED_ISK_AMOUNTS=read-as-hundredths; a database without any passes. The migration that
stops changes nothing, and the ones before it, of every database migrated before, stay applied."""

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic import command

from remit.databases import migrate
from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import Tree, alembic_config, upgrade
from remit.storage.migration_stops import MigrationStoppedError
from remit.storage.reachability import PlatformDatabase
from remit.storage.schema_check import shipped_revisions
from tests.support.commands import remit
from tests.support.migration_modules import migration_module
from tests.support.postgres import scratch_database

CORE_BEFORE = "0088_card_fingerprint_scope"
CORE_AFTER = "0089_isk_amounts_in_hundredths"
ACQUIRER_BEFORE = "0006_authorization_amounts"
ACQUIRER_AFTER = "0007_isk_amounts_in_hundredths"
ACQUIRER_0005 = "0005_released_remainders"

_ACCOUNT = (
    "INSERT INTO accounts (id, created_at, default_currency, raw_card_access, fee_percent_bps, "
    "fee_fixed_minor, available_delay_days, automatic_payouts, radar_enabled) "
    "VALUES ('acct_1', now(), 'usd', false, 290, 30, 2, false, true)"
)
_INTENT = (
    "INSERT INTO payment_intents (id, account_id, amount_minor, currency, status, "
    "capture_method, confirmation_method, client_secret, metadata, amount_capturable_minor, "
    "amount_received_minor, created_at, updated_at) VALUES (%s, 'acct_1', %s, %s, "
    "'requires_payment_method', 'automatic', 'automatic', %s, '{}', 0, 0, now(), now())"
)
_AUTHORIZATION = (
    "INSERT INTO authorizations (id, merchant_id, currency, authorized_minor, captured_minor, "
    "refunded_minor, state, card_brand, card_funding, card_bin, card_last4, exp_month, "
    "exp_year, created_at, updated_at) VALUES (%s, 'acct_1', %s, %s, 0, 0, 'authorized', "
    "'visa', 'credit', '424242', '4242', 12, 2034, now(), now())"
)
_DECIDED = {"REMIT_STORED_ISK_AMOUNTS": "read-as-hundredths"}


@pytest.fixture
def core_before(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "isk_amounts_core") as url:
        upgrade("core", url, CORE_BEFORE)
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(_ACCOUNT)
            db.execute(_INTENT, ("pi_usd", 2000, "usd", "pi_usd_secret"))
            db.execute(_INTENT, ("pi_jpy", 500, "jpy", "pi_jpy_secret"))
        yield url


@pytest.fixture
def acquirer_before(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "isk_amounts_acquirer") as url:
        upgrade("acquirer", url, ACQUIRER_BEFORE)
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(_AUTHORIZATION, ("auth_usd", "usd", 2000))
        yield url


@pytest.fixture(autouse=True)
def undecided(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REMIT_STORED_ISK_AMOUNTS", raising=False)


def _revision(url: str) -> str:
    with psycopg.connect(url) as db:
        row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert row is not None
    return str(row[0])


def _never_migrated(url: str) -> bool:
    with psycopg.connect(url) as db:
        return db.execute("SELECT to_regclass('alembic_version')").fetchone() == (None,)


def _left_applied(migration: str) -> str:
    return (
        f"{migration} changed nothing; the migrations before it stay applied (each commits on "
        "its own, and the databases migrate in the order core, vault, acquirer), and the "
        "earlier version runs on that schema, leaving it as it is."
    )


def _rows(url: str, table: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as db:
        return db.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()  # noqa: S608


def _migration_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "remit.storage.migrations"]


def test_a_core_database_without_isk_amounts_is_upgraded_and_nothing_recorded(
    core_before: str, caplog: pytest.LogCaptureFixture
) -> None:
    intents = _rows(core_before, "payment_intents")
    with caplog.at_level(logging.WARNING, logger="remit.storage.migrations"):
        upgrade("core", core_before, CORE_AFTER)
    assert _revision(core_before) == CORE_AFTER
    assert _rows(core_before, "payment_intents") == intents
    assert _migration_lines(caplog) == []


def test_a_core_database_with_an_isk_intent_is_not_upgraded_and_says_what_to_decide(
    core_before: str,
) -> None:
    with psycopg.connect(core_before, autocommit=True) as db:
        db.execute(_INTENT, ("pi_isk", 500, "isk", "pi_isk_secret"))
    intents = _rows(core_before, "payment_intents")

    with pytest.raises(MigrationStoppedError) as stopped:
        upgrade("core", core_before, CORE_AFTER)

    message = str(stopped.value)
    assert message.startswith("The core database holds isk amounts (payment_intents) stored ")
    assert "a balance of 500 kr as 5 kr" in message
    assert "pay out every isk balance" in message
    assert "REMIT_STORED_ISK_AMOUNTS=read-as-hundredths" in message
    assert "README, Upgrading, core migration 0089" in message
    assert message.endswith(_left_applied("Core migration 0089"))
    assert _rows(core_before, "payment_intents") == intents
    assert _revision(core_before) == CORE_BEFORE


def test_every_core_table_holding_isk_is_named(core_before: str) -> None:
    with psycopg.connect(core_before, autocommit=True) as db:
        db.execute(_INTENT, ("pi_isk", 50000, "isk", "pi_isk_secret"))
        db.execute(
            "INSERT INTO ledger_accounts (id, account_id, name, currency, non_negative, "
            "posted_balance_minor, pending_incoming_minor, pending_outgoing_minor, created_at, "
            "updated_at) VALUES ('la_1', 'acct_1', 'available', 'isk', true, 500, 0, 0, now(), "
            "now())"
        )
    with pytest.raises(MigrationStoppedError, match=r"\(ledger_accounts, payment_intents\)"):
        upgrade("core", core_before, CORE_AFTER)
    assert _revision(core_before) == CORE_BEFORE


def test_the_operators_decision_lets_the_upgrade_through_with_a_warning(
    core_before: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with psycopg.connect(core_before, autocommit=True) as db:
        db.execute(_INTENT, ("pi_isk", 500, "isk", "pi_isk_secret"))
    intents = _rows(core_before, "payment_intents")
    monkeypatch.setenv("REMIT_STORED_ISK_AMOUNTS", "read-as-hundredths")

    with caplog.at_level(logging.WARNING, logger="remit.storage.migrations"):
        upgrade("core", core_before, CORE_AFTER)

    assert _revision(core_before) == CORE_AFTER
    assert _rows(core_before, "payment_intents") == intents  # read as hundredths, unconverted
    [line] = _migration_lines(caplog)
    assert "the core database holds isk amounts stored in whole krónur (payment_intents)" in line


def test_a_malformed_decision_stops_the_upgrade_even_without_isk_amounts(
    core_before: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMIT_STORED_ISK_AMOUNTS", "yes")
    with pytest.raises(
        MigrationStoppedError, match="must be 'read-as-hundredths' or unset"
    ) as stopped:
        upgrade("core", core_before, CORE_AFTER)
    assert str(stopped.value).endswith(_left_applied("Core migration 0089"))
    assert _revision(core_before) == CORE_BEFORE


def test_the_core_downgrade_changes_nothing(core_before: str) -> None:
    upgrade("core", core_before, CORE_AFTER)
    with psycopg.connect(core_before, autocommit=True) as db:
        db.execute(_INTENT, ("pi_isk", 500, "isk", "pi_isk_secret"))
    intents = _rows(core_before, "payment_intents")
    command.downgrade(alembic_config("core", core_before), CORE_BEFORE)
    assert _revision(core_before) == CORE_BEFORE
    assert _rows(core_before, "payment_intents") == intents


def test_an_acquirer_database_without_isk_amounts_is_upgraded(acquirer_before: str) -> None:
    authorizations = _rows(acquirer_before, "authorizations")
    upgrade("acquirer", acquirer_before, ACQUIRER_AFTER)
    assert _revision(acquirer_before) == ACQUIRER_AFTER
    assert _rows(acquirer_before, "authorizations") == authorizations


def test_an_acquirer_database_with_an_isk_authorization_is_not_upgraded(
    acquirer_before: str,
) -> None:
    with psycopg.connect(acquirer_before, autocommit=True) as db:
        db.execute(_AUTHORIZATION, ("auth_isk", "isk", 500))
    authorizations = _rows(acquirer_before, "authorizations")

    with pytest.raises(MigrationStoppedError) as stopped:
        upgrade("acquirer", acquirer_before, ACQUIRER_AFTER)

    message = str(stopped.value)
    assert message.startswith("The acquirer database holds isk amounts (authorizations) ")
    assert "REMIT_STORED_ISK_AMOUNTS=read-as-hundredths" in message
    assert "README, Upgrading, acquirer migration 0007" in message
    assert message.endswith(_left_applied("Acquirer migration 0007"))
    assert _rows(acquirer_before, "authorizations") == authorizations
    assert _revision(acquirer_before) == ACQUIRER_BEFORE


def test_the_acquirer_downgrade_changes_nothing(acquirer_before: str) -> None:
    upgrade("acquirer", acquirer_before, ACQUIRER_AFTER)
    authorizations = _rows(acquirer_before, "authorizations")
    command.downgrade(alembic_config("acquirer", acquirer_before), ACQUIRER_BEFORE)
    assert _revision(acquirer_before) == ACQUIRER_BEFORE
    assert _rows(acquirer_before, "authorizations") == authorizations


@pytest.mark.parametrize(
    ("tree", "before", "after"),
    [("core", CORE_BEFORE, CORE_AFTER), ("acquirer", ACQUIRER_BEFORE, ACQUIRER_AFTER)],
)
def test_every_table_with_a_currency_is_checked(
    pg_cluster: EmbeddedCluster, tree: Tree, before: str, after: str
) -> None:
    """A table holding amounts names their currency: each one the schema has where the guard
    runs is among those it reads."""
    with scratch_database(pg_cluster, f"isk_amounts_tables_{tree}") as url:
        upgrade(tree, url, before)
        with psycopg.connect(url) as db:
            rows = db.execute(
                "SELECT c.table_name FROM information_schema.columns AS c "
                "JOIN information_schema.tables AS t USING (table_schema, table_name) "
                "WHERE c.table_schema = current_schema() AND c.column_name = 'currency' "
                "AND t.table_type = 'BASE TABLE'"
            ).fetchall()
    with_currency = {str(row[0]) for row in rows}
    assert with_currency
    assert set(migration_module(tree, after).TABLES_WITH_AMOUNTS) == with_currency


def test_remit_migrate_reports_the_stop_in_one_line_and_exits_refused(
    core_before: str, pg_cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    with psycopg.connect(core_before, autocommit=True) as db:
        db.execute(_INTENT, ("pi_isk", 500, "isk", "pi_isk_secret"))
    with (
        scratch_database(pg_cluster, "isk_amounts_stop_vault") as vault_url,
        scratch_database(pg_cluster, "isk_amounts_stop_acquirer") as acquirer_url,
    ):
        stopped = asyncio.run(
            remit(
                "migrate",
                tmp_path=tmp_path,
                DATABASE_URL=core_before,
                VAULT_DATABASE_URL=vault_url,
                ACQUIRER_DATABASE_URL=acquirer_url,
            )
        )
        assert stopped.returncode == 2, stopped.stderr
        assert stopped.failure_line().startswith(
            "remit migrate: The core database holds isk amounts (payment_intents)"
        )
        assert _revision(core_before) == CORE_BEFORE
        # The core is migrated first: the stop leaves the other two as they were.
        assert _never_migrated(vault_url)
        assert _never_migrated(acquirer_url)

        decided = asyncio.run(
            remit(
                "migrate",
                tmp_path=tmp_path,
                DATABASE_URL=core_before,
                VAULT_DATABASE_URL=vault_url,
                ACQUIRER_DATABASE_URL=acquirer_url,
                **_DECIDED,
            )
        )
    assert decided.returncode == 0, decided.stderr
    assert "migrations applied" in decided.stdout
    assert _revision(core_before) != CORE_BEFORE


def test_a_stop_in_the_acquirer_leaves_the_migrations_before_it_applied(
    pg_cluster: EmbeddedCluster,
) -> None:
    """The databases migrate in order, each migration committed on its own: isk held by the
    acquirer alone leaves the core and the vault at their heads, and the acquirer's own
    migrations before 0007 applied."""
    with (
        scratch_database(pg_cluster, "isk_amounts_order_core") as core_url,
        scratch_database(pg_cluster, "isk_amounts_order_vault") as vault_url,
        scratch_database(pg_cluster, "isk_amounts_order_acquirer") as acquirer_url,
    ):
        upgrade("acquirer", acquirer_url, ACQUIRER_0005)
        with psycopg.connect(acquirer_url, autocommit=True) as db:
            db.execute(_AUTHORIZATION, ("auth_isk", "isk", 500))
        databases = [
            PlatformDatabase("core", "DATABASE_URL", core_url, ("core",)),
            PlatformDatabase("vault", "VAULT_DATABASE_URL", vault_url, ("vault",)),
            PlatformDatabase("acquirer", "ACQUIRER_DATABASE_URL", acquirer_url, ("acquirer",)),
        ]

        with pytest.raises(MigrationStoppedError) as stopped:
            migrate(databases)

        assert str(stopped.value).endswith(_left_applied("Acquirer migration 0007"))
        assert _revision(core_url) == shipped_revisions("core")[-1]
        assert _revision(vault_url) == shipped_revisions("vault")[-1]
        assert _revision(acquirer_url) == ACQUIRER_BEFORE
