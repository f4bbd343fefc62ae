"""Core migration 0062 indexes the admin idempotency keys by creation time, which the hourly
reaper deletes them by, without reading the whole table; its downgrade drops the index and
leaves the keys."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

_BEFORE = "0061_radar_created_by_keys"
_AFTER = "0062_admin_idempotency_created"
_INDEX = "ix_admin_idempotency_keys_created_at"
_CLAIMED = datetime(2026, 11, 3, 1, 0, tzinfo=UTC)


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "admin_idempotency_created") as url:
        yield url


def _index(url: str) -> tuple[str, bool] | None:
    """The index's definition and whether it is valid; None when there is none."""
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT pg_get_indexdef(i.indexrelid), i.indisvalid FROM pg_index i "
            "WHERE i.indexrelid = to_regclass(%s)",
            (_INDEX,),
        ).fetchone()
    return None if row is None else (str(row[0]), bool(row[1]))


def _reaper_plan(url: str) -> str:
    with psycopg.connect(url) as connection:
        # Few rows: without this the planner reads them all whatever indexes there are.
        connection.execute("SET enable_seqscan = off")
        rows = connection.execute(
            "EXPLAIN DELETE FROM admin_idempotency_keys WHERE created_at < %s",
            (_CLAIMED + timedelta(hours=1),),
        ).fetchall()
        connection.rollback()
    return "\n".join(str(row[0]) for row in rows)


def test_the_keys_are_indexed_by_creation_time_and_the_downgrade_drops_only_the_index(
    scratch_core: str,
) -> None:
    upgrade("core", scratch_core, _BEFORE)
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO admin_idempotency_keys (idempotency_key, endpoint, request_digest, "
            "account_id, api_key_ids, created_at) VALUES ('k-1', 'CreateAccount', '\\x00', "
            "'acct_1', ARRAY['key_1'], %s)",
            (_CLAIMED,),
        )
    assert _index(scratch_core) is None
    assert _INDEX not in _reaper_plan(scratch_core)

    upgrade("core", scratch_core, _AFTER)
    assert _index(scratch_core) == (
        f"CREATE INDEX {_INDEX} ON public.admin_idempotency_keys USING btree (created_at)",
        True,
    )
    assert _INDEX in _reaper_plan(scratch_core)

    command.downgrade(alembic_config("core", scratch_core), _BEFORE)
    assert _index(scratch_core) is None
    with psycopg.connect(scratch_core) as connection:
        assert connection.execute(
            "SELECT idempotency_key, created_at FROM admin_idempotency_keys"
        ).fetchall() == [("k-1", _CLAIMED)]
