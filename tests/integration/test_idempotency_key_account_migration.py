"""Core migration 0048 gives idempotency keys a foreign key to their account: it deletes the
keys of accounts that do not exist, in batches, without holding up the table's writes while it
does, validates the constraint, and finishes an upgrade that was interrupted after adding it."""

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.migrating import upgrading_in_a_thread
from tests.support.postgres import scratch_database

_BEFORE = "0047_request_three_d_secure"
_AFTER = "0048_idempotency_key_account"
_CONSTRAINT = "fk_idempotency_keys_account_id_accounts"

# More keys of one missing account than the migration deletes in one batch.
_KEYS_OF_A_MISSING_ACCOUNT = 2500


@pytest.fixture
def database_before(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "idempotency_key_account") as url:
        upgrade("core", url, _BEFORE)
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(
                "INSERT INTO accounts (id, created_at, default_currency, raw_card_access, "
                "fee_percent_bps, fee_fixed_minor, available_delay_days, automatic_payouts, "
                "radar_enabled) VALUES ('acct_1', now(), 'usd', false, 290, 30, 2, false, true)"
            )
            _insert_keys(db, "acct_1", ["kept-1", "kept-2"])
            _insert_keys(db, "acct_missing", [f"m-{n}" for n in range(_KEYS_OF_A_MISSING_ACCOUNT)])
            for n in range(3):
                _insert_keys(db, f"acct_missing_{n}", ["only"])
        yield url


def _insert_keys(db: "psycopg.Connection[Any]", account_id: str, keys: list[str]) -> None:
    db.execute(
        "INSERT INTO idempotency_keys (account_id, key, endpoint, request_digest, request_body, "
        "recovery_point, created_at, last_run_at) "
        "SELECT %s, key, 'CreatePaymentIntent', '\\x00', '\\x00', 'started', now(), now() "
        "FROM unnest(%s::text[]) AS key",
        (account_id, keys),
    )


def _keys(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT account_id, key FROM idempotency_keys ORDER BY 1, 2").fetchall()
    return [(row[0], row[1]) for row in rows]


def _constraint_validated(url: str) -> bool | None:
    """Whether the foreign key is validated; None when there is none."""
    with psycopg.connect(url) as db:
        row = db.execute(
            "SELECT convalidated FROM pg_constraint WHERE conname = %s", (_CONSTRAINT,)
        ).fetchone()
    return None if row is None else bool(row[0])


def test_keys_of_accounts_that_do_not_exist_go_and_the_constraint_is_validated(
    database_before: str,
) -> None:
    url = database_before
    upgrade("core", url, _AFTER)

    assert _keys(url) == [("acct_1", "kept-1"), ("acct_1", "kept-2")]
    assert _constraint_validated(url) is True
    with (
        psycopg.connect(url, autocommit=True) as db,
        pytest.raises(psycopg.errors.ForeignKeyViolation) as refused,
    ):
        _insert_keys(db, "acct_missing", ["again"])
    assert refused.value.diag.constraint_name == _CONSTRAINT

    command.downgrade(alembic_config("core", url), _BEFORE)
    assert _constraint_validated(url) is None


def _wait_for_the_deletion_to_wait(url: str) -> None:
    deadline = time.monotonic() + 30
    with psycopg.connect(url, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE query ILIKE 'DELETE FROM idempotency_keys%%' AND wait_event_type = 'Lock'"
            ).fetchone()
            if waiting is not None and waiting[0] > 0:
                return
            time.sleep(0.02)
    raise AssertionError("the deletion of keys never started waiting for the locked key")


def test_keys_are_written_while_the_migration_deletes_and_validates(
    database_before: str,
) -> None:
    """The constraint is added in a transaction of its own: once it commits, the table takes
    writes again (checked against it) while the keys of missing accounts are deleted and the
    constraint is validated. Had the three run in one transaction, adding the constraint would
    hold every write of keys back until the whole table had been read."""
    url = database_before
    with psycopg.connect(url) as holder:
        # A row lock on a key of a missing account: the deletion waits for it. Taking it locks
        # the table in ROW SHARE mode only, which lets the constraint be added.
        holder.execute(
            "SELECT 1 FROM idempotency_keys WHERE account_id = 'acct_missing_0' FOR UPDATE"
        )
        with upgrading_in_a_thread("core", url, _AFTER) as failure:
            try:
                _wait_for_the_deletion_to_wait(url)
                assert _constraint_validated(url) is False
                with psycopg.connect(url, autocommit=True) as writer:
                    # Were the constraint's lock still held, this would wait for it.
                    writer.execute("SET lock_timeout = '2s'")
                    _insert_keys(writer, "acct_1", ["written-meanwhile"])
                    with pytest.raises(psycopg.errors.ForeignKeyViolation):
                        _insert_keys(writer, "acct_missing_1", ["refused-meanwhile"])
            finally:
                holder.rollback()
    assert failure == []
    assert _keys(url) == [
        ("acct_1", "kept-1"),
        ("acct_1", "kept-2"),
        ("acct_1", "written-meanwhile"),
    ]
    assert _constraint_validated(url) is True


def test_an_upgrade_interrupted_after_adding_the_constraint_finishes(
    database_before: str,
) -> None:
    url = database_before
    with psycopg.connect(url, autocommit=True) as db:
        # What the first step leaves when the upgrade stops before its end.
        db.execute(
            f"ALTER TABLE idempotency_keys ADD CONSTRAINT {_CONSTRAINT} "
            "FOREIGN KEY (account_id) REFERENCES accounts (id) NOT VALID"
        )

    upgrade("core", url, _AFTER)

    assert _keys(url) == [("acct_1", "kept-1"), ("acct_1", "kept-2")]
    assert _constraint_validated(url) is True
