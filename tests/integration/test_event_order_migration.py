"""Core migration 0087 numbers events in the order they are recorded: the events recorded
before it are numbered in batches, in id order, so that the events of one instant keep the
order they were listed in; the column becomes NOT NULL and the lists' index is rebuilt on it;
the downgrade puts the index on ids back and drops the column and its sequence."""

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from alembic import command

import remit.storage.batched_backfill
from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

_BEFORE = "0086_api_key_events"
_AFTER = "0087_event_order"
_AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
_EVENTS = 50

# An account and its events, all of one instant, their ids in no order of their n.
_ROWS = """
INSERT INTO accounts (id, created_at, default_currency, raw_card_access, fee_percent_bps,
                      fee_fixed_minor, available_delay_days, automatic_payouts, radar_enabled)
VALUES ('acct_1', %(at)s, 'usd', false, 290, 30, 2, false, true);
INSERT INTO events (id, account_id, type, created_at, livemode, data_object)
SELECT 'evt_' || md5(n::text), 'acct_1', 'customer.created', %(at)s, false,
       '{"object": "customer"}'
FROM generate_series(1, %(events)s) AS n
"""
_LISTED_BEFORE = "SELECT id FROM events ORDER BY created_at DESC, id DESC"
_LISTED_AFTER = "SELECT id FROM events ORDER BY created_at DESC, seq DESC"
# What the outbox inserts: no `seq`, which the column's default draws.
_RECORDED = (
    "INSERT INTO events (id, account_id, type, created_at, livemode, data_object)"
    " VALUES (%s, 'acct_1', 'customer.updated', %s, false, '{\"object\": \"customer\"}')"
)


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    # More events than one batch holds, so that the numbering runs several.
    monkeypatch.setattr(remit.storage.batched_backfill, "BATCH_ROWS", 7)


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "event_order") as url:
        yield url


def _indexes(connection: psycopg.Connection[tuple[object, ...]]) -> dict[str, str]:
    rows = connection.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = CAST('events' AS regclass) AND i.indisvalid"
    ).fetchall()
    return {str(name): str(definition) for name, definition in rows}


def _column(connection: psycopg.Connection[tuple[object, ...]]) -> tuple[object, ...] | None:
    return connection.execute(
        "SELECT is_nullable FROM information_schema.columns"
        " WHERE table_name = 'events' AND column_name = 'seq'"
    ).fetchone()


def test_events_recorded_before_keep_their_order_and_new_ones_are_numbered_after_them(
    scratch_core: str,
) -> None:
    upgrade("core", scratch_core, _BEFORE)
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        for statement in _ROWS.split(";"):
            connection.execute(statement, {"at": _AT, "events": _EVENTS})
        listed_before = connection.execute(_LISTED_BEFORE).fetchall()

    upgrade("core", scratch_core, _AFTER)
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        assert _column(connection) == ("NO",)
        assert connection.execute(_LISTED_AFTER).fetchall() == listed_before
        assert connection.execute("SELECT count(DISTINCT seq) FROM events").fetchone() == (_EVENTS,)
        # Recorded after, at the same instant: listed first, newest first.
        connection.execute(_RECORDED, ("evt_0_late", _AT))
        connection.execute(_RECORDED, ("evt_00_later", _AT))
        listed = connection.execute(_LISTED_AFTER).fetchall()
        assert listed == [("evt_00_later",), ("evt_0_late",), *listed_before]
        assert _indexes(connection) == {
            "pk_events": "CREATE UNIQUE INDEX pk_events ON public.events USING btree (id)",
            "ix_events_created_at": (
                "CREATE INDEX ix_events_created_at ON public.events USING btree (created_at)"
            ),
            "ix_events_account_id_created_at_seq": (
                "CREATE INDEX ix_events_account_id_created_at_seq ON public.events"
                " USING btree (account_id, created_at, seq)"
            ),
        }
        assert (
            connection.execute(
                "SELECT conname FROM pg_constraint WHERE conrelid = CAST('events' AS regclass)"
                " AND contype = 'c'"
            ).fetchall()
            == []
        )

    command.downgrade(alembic_config("core", scratch_core), _BEFORE)
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        assert _column(connection) is None
        assert "ix_events_account_id_created_at" in _indexes(connection)
        assert "ix_events_account_id_created_at_seq" not in _indexes(connection)
        assert connection.execute("SELECT to_regclass('events_seq')").fetchone() == (None,)
        assert connection.execute("SELECT count(*) FROM events").fetchone() == (_EVENTS + 2,)


def test_an_upgrade_stopped_after_numbering_part_of_the_events_finishes_when_run_again(
    scratch_core: str,
) -> None:
    """Stopped part-way (the column added and some events numbered, the revision not yet
    recorded), the migration runs again from the start and numbers only the rest."""
    upgrade("core", scratch_core, _BEFORE)
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        for statement in _ROWS.split(";"):
            connection.execute(statement, {"at": _AT, "events": _EVENTS})
        listed_before = connection.execute(_LISTED_BEFORE).fetchall()
        connection.execute("CREATE SEQUENCE events_seq AS bigint")
        connection.execute("ALTER TABLE events ADD COLUMN seq bigint")
        connection.execute(
            "UPDATE events AS e SET seq = first.n FROM ("
            "  SELECT id, row_number() OVER (ORDER BY id) AS n FROM events ORDER BY id LIMIT 10"
            ") AS first WHERE e.id = first.id"
        )
        connection.execute("SELECT setval('events_seq', 10)")

    upgrade("core", scratch_core, _AFTER)
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        assert _column(connection) == ("NO",)
        assert connection.execute(_LISTED_AFTER).fetchall() == listed_before
