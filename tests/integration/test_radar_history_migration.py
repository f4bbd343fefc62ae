"""Core migration 0057 gives every rule stored before it version 1, and an empty history; its
downgrade drops the history recorded since, as its docstring and the README warn."""

from collections.abc import Iterator

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "radar_history") as url:
        yield url


def test_rules_stored_before_are_at_version_1(scratch_core: str) -> None:
    upgrade("core", scratch_core, "0056_unique_list_items")
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO accounts (id, created_at, default_currency, raw_card_access, "
            "fee_percent_bps, fee_fixed_minor, available_delay_days, automatic_payouts, "
            "radar_enabled) VALUES ('acct_1', now(), 'usd', false, 290, 30, 2, false, true)"
        )
        connection.execute(
            "INSERT INTO radar_rules (id, account_id, action, predicate, position, created_at) "
            "VALUES ('rule_1', 'acct_1', 'block', ':risk_score: > 90', 0, now())"
        )
    upgrade("core", scratch_core, "0057_radar_history")
    with psycopg.connect(scratch_core) as connection:
        assert connection.execute("SELECT id, version FROM radar_rules").fetchall() == [
            ("rule_1", 1)
        ]
        assert connection.execute("SELECT count(*) FROM radar_changes").fetchone() == (0,)


def test_the_downgrade_drops_the_history_and_the_versions(scratch_core: str) -> None:
    upgrade("core", scratch_core, "0057_radar_history")
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        connection.execute("SET session_replication_role = replica")  # no account needed
        connection.execute(
            "INSERT INTO radar_changes (id, account_id, object_type, object_id, action, "
            "changed_by, created_at) VALUES ('rchg_1', 'acct_1', 'rule', 'rule_1', 'created', "
            "'remit', now())"
        )
    command.downgrade(alembic_config("core", scratch_core), "0056_unique_list_items")
    with psycopg.connect(scratch_core) as connection:
        assert connection.execute("SELECT to_regclass('radar_changes')").fetchone() == (None,)
        columns = connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'radar_rules'"
        ).fetchall()
    assert ("version",) not in columns
