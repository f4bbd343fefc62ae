"""Core migrations 0022 and 0028 fill their new columns in batches after adding them: charges
and refunds stay writable meanwhile, and an upgrade stopped part-way finishes when run again."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import psycopg
import pytest

import remit.storage.batched_backfill
from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import upgrade
from tests.support.migrating import upgrading_in_a_thread
from tests.support.postgres import scratch_database

_BEFORE_RELEASES = "0021_webhook_failure_runs"
_RELEASES = "0022_released_authorizations"
_BEFORE_REFUND_CUSTOMERS = "0027_payouts_due"
_REFUND_CUSTOMERS = "0028_refund_customer_and_method"
# The advisory lock a test holds to keep one batch of a backfill waiting.
_BATCH_HOLD = 7340021
_ROWS = 50
_BATCH_ROWS = 20
T0 = datetime(2026, 11, 1, tzinfo=UTC)

Connection = psycopg.Connection[tuple[object, ...]]


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    # More rows than one batch holds, so that a backfill runs several.
    monkeypatch.setattr(remit.storage.batched_backfill, "BATCH_ROWS", _BATCH_ROWS)


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "batched_backfill") as url:
        yield url


def _intent(connection: Connection, intent_id: str, status: str, latest_charge: str) -> None:
    connection.execute(
        "INSERT INTO payment_intents (id, account_id, amount_minor, currency, status, "
        "capture_method, confirmation_method, client_secret, metadata, "
        "amount_capturable_minor, amount_received_minor, latest_charge_id, created_at, "
        "updated_at) VALUES (%s, 'acct_1', 1000, 'usd', %s, 'manual', 'automatic', 'secret', "
        "'{}', 0, 0, %s, %s, %s)",
        (intent_id, status, latest_charge, T0, T0),
    )


def _charge(
    connection: Connection,
    charge_id: str,
    *,
    captured: bool = False,
    customer_id: str | None = None,
) -> None:
    connection.execute(
        "INSERT INTO charges (id, account_id, payment_intent_id, amount_minor, "
        "amount_captured_minor, amount_refunded_minor, currency, status, captured, "
        "capture_requested, payment_method_id, customer_id, card, metadata, created_at, "
        "updated_at) VALUES (%s, 'acct_1', %s, 1000, 0, 0, 'usd', 'succeeded', %s, false, "
        "%s, %s, '{}', '{}', %s, %s)",
        (charge_id, f"pi_{charge_id}", captured, f"pm_{charge_id}", customer_id, T0, T0),
    )


def _refund(connection: Connection, refund_id: str, charge_id: str) -> None:
    connection.execute(
        "INSERT INTO refunds (id, account_id, charge_id, payment_intent_id, amount_minor, "
        "currency, status, metadata, created_at, updated_at) VALUES (%s, 'acct_1', %s, %s, "
        "100, 'usd', 'succeeded', '{}', %s, %s)",
        (refund_id, charge_id, f"pi_{charge_id}", T0, T0),
    )


def _rows() -> list[str]:
    # Zero-padded, so that their order by id is their order by number.
    return [f"{n:03d}" for n in range(_ROWS)]


def _released_charges(url: str) -> None:
    """Charges `ch_000`.. whose authorization was released with their canceled intent."""
    with psycopg.connect(url) as connection:
        connection.execute("SET session_replication_role = replica")  # rows without parents
        for n in _rows():
            _intent(connection, f"pi_ch_{n}", "canceled", f"ch_{n}")
            _charge(connection, f"ch_{n}")


def _refunds_of_customers(url: str) -> None:
    """Refunds `re_000`.. of charges of customer `cus_<n>`."""
    with psycopg.connect(url) as connection:
        connection.execute("SET session_replication_role = replica")  # rows without parents
        for n in _rows():
            _charge(connection, f"ch_{n}", captured=True, customer_id=f"cus_{n}")
            _refund(connection, f"re_{n}", f"ch_{n}")


def _version(url: str) -> str:
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert row is not None
    return str(row[0])


def _released(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT id FROM charges WHERE authorization_released ORDER BY id"
        ).fetchall()
    return [str(row[0]) for row in rows]


def _refund_customers(url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(
            "SELECT id, customer_id, payment_method_id FROM refunds ORDER BY id"
        ).fetchall()


def _filled_refunds(url: str) -> list[str]:
    return [str(row[0]) for row in _refund_customers(url) if row[1] is not None]


def _when_updating(url: str, table: str, row_id: str, action: str) -> None:
    """Makes an UPDATE of `table`'s row `row_id` run `action` (PL/pgSQL) first."""
    with psycopg.connect(url) as connection:
        connection.execute(
            f"CREATE FUNCTION backfill_hook() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {action}; RETURN NEW; END $$"
        )
        connection.execute(
            f"CREATE TRIGGER backfill_hook BEFORE UPDATE ON {table} FOR EACH ROW "
            f"WHEN (NEW.id = '{row_id}') EXECUTE FUNCTION backfill_hook()"
        )


def _forget_hook(url: str, table: str) -> None:
    with psycopg.connect(url) as connection:
        connection.execute(f"DROP TRIGGER backfill_hook ON {table}")
        connection.execute("DROP FUNCTION backfill_hook()")


def _wait_for_a_held_batch(url: str) -> None:
    deadline = time.monotonic() + 30
    with psycopg.connect(url, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE '%%UPDATE%%' "
                "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
            ).fetchone()
            if waiting is not None and waiting[0] > 0:
                return
            time.sleep(0.02)
    raise AssertionError("the backfill never reached the held row")


@contextmanager
def _backfill_held_at(
    url: str, table: str, row_id: str, destination: str
) -> Iterator[list[BaseException]]:
    """Upgrade to `destination` in a thread, its backfill of `table` kept waiting at the row
    `row_id` for the block's duration; the list holds what the upgrade raised, if anything."""
    _when_updating(url, table, row_id, f"PERFORM pg_advisory_xact_lock({_BATCH_HOLD})")
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (_BATCH_HOLD,))
        with upgrading_in_a_thread("core", url, destination) as failure:
            try:
                _wait_for_a_held_batch(url)
                yield failure
            finally:
                holder.execute("SELECT pg_advisory_unlock(%s)", (_BATCH_HOLD,))


def _write_without_waiting(url: str, table: str, row: str) -> None:
    """Inserts into `table` (`charges` or `refunds`), failing at once if it would have to wait
    for the table's lock."""
    with psycopg.connect(url) as writer:
        writer.execute("SET session_replication_role = replica")  # rows without parents
        # NOWAIT: the insert must not have to queue behind the backfill at all.
        writer.execute(f"LOCK TABLE {table} IN ROW EXCLUSIVE MODE NOWAIT")
        if table == "charges":
            _charge(writer, row, captured=True)
        else:
            _refund(writer, row, "ch_000")


def test_charges_stay_writable_while_released_authorizations_are_marked(
    scratch_core: str,
) -> None:
    upgrade("core", scratch_core, _BEFORE_RELEASES)
    _released_charges(scratch_core)
    # The backfill waits at a charge of its second batch.
    with _backfill_held_at(scratch_core, "charges", "ch_030", _RELEASES) as failure:
        _write_without_waiting(scratch_core, "charges", "ch_new")
        # The first batch is already committed, the second not yet.
        assert _released(scratch_core) == [f"ch_{n:03d}" for n in range(_BATCH_ROWS)]
    assert failure == []
    assert _released(scratch_core) == [f"ch_{n}" for n in _rows()]
    assert _version(scratch_core) == _RELEASES


def test_refunds_stay_writable_while_their_customers_are_filled(scratch_core: str) -> None:
    upgrade("core", scratch_core, _BEFORE_REFUND_CUSTOMERS)
    _refunds_of_customers(scratch_core)
    with _backfill_held_at(scratch_core, "refunds", "re_030", _REFUND_CUSTOMERS) as failure:
        _write_without_waiting(scratch_core, "refunds", "re_new")
        assert _filled_refunds(scratch_core) == [f"re_{n:03d}" for n in range(_BATCH_ROWS)]
    assert failure == []
    # The refund written meanwhile is of a charge with a customer too.
    assert _filled_refunds(scratch_core) == [f"re_{n}" for n in _rows()] + ["re_new"]


def test_only_charges_released_with_their_intent_are_marked(scratch_core: str) -> None:
    upgrade("core", scratch_core, _BEFORE_RELEASES)
    with psycopg.connect(scratch_core) as connection:
        connection.execute("SET session_replication_role = replica")  # rows without parents
        _intent(connection, "pi_ch_released", "canceled", "ch_released")
        _charge(connection, "ch_released")
        _intent(connection, "pi_ch_captured", "canceled", "ch_captured")
        _charge(connection, "ch_captured", captured=True)
        _intent(connection, "pi_ch_held", "requires_capture", "ch_held")
        _charge(connection, "ch_held")
        # An earlier charge of a canceled intent: its latest charge is another one.
        _intent(connection, "pi_ch_earlier", "canceled", "ch_later")
        _charge(connection, "ch_earlier")

    upgrade("core", scratch_core, _RELEASES)

    assert _released(scratch_core) == ["ch_released"]


def test_released_authorizations_are_marked_when_an_interrupted_upgrade_runs_again(
    scratch_core: str,
) -> None:
    upgrade("core", scratch_core, _BEFORE_RELEASES)
    _released_charges(scratch_core)
    _when_updating(scratch_core, "charges", "ch_030", "RAISE EXCEPTION 'interrupted'")

    with pytest.raises(Exception, match="interrupted"):
        upgrade("core", scratch_core, _RELEASES)
    # The column and the first batch are kept; the revision is not recorded.
    assert _version(scratch_core) == _BEFORE_RELEASES
    assert _released(scratch_core) == [f"ch_{n:03d}" for n in range(_BATCH_ROWS)]

    _forget_hook(scratch_core, "charges")
    upgrade("core", scratch_core, _RELEASES)

    assert _version(scratch_core) == _RELEASES
    assert _released(scratch_core) == [f"ch_{n}" for n in _rows()]


def test_refunds_already_filled_are_kept_when_an_interrupted_upgrade_runs_again(
    scratch_core: str,
) -> None:
    upgrade("core", scratch_core, _BEFORE_REFUND_CUSTOMERS)
    _refunds_of_customers(scratch_core)
    _when_updating(scratch_core, "refunds", "re_030", "RAISE EXCEPTION 'interrupted'")
    with pytest.raises(Exception, match="interrupted"):
        upgrade("core", scratch_core, _REFUND_CUSTOMERS)
    _forget_hook(scratch_core, "refunds")
    # A refund made meanwhile by the application, which copies its charge's customer.
    with psycopg.connect(scratch_core) as connection:
        connection.execute(
            "UPDATE refunds SET customer_id = 'cus_as_made', payment_method_id = 'pm_as_made' "
            "WHERE id = 're_040'"
        )

    upgrade("core", scratch_core, _REFUND_CUSTOMERS)

    rows = _refund_customers(scratch_core)
    assert len(rows) == _ROWS
    assert ("re_040", "cus_as_made", "pm_as_made") in rows
    assert all(
        row == (f"re_{n}", f"cus_{n}", f"pm_ch_{n}")
        for row, n in zip(rows, _rows(), strict=True)
        if row[0] != "re_040"
    )
