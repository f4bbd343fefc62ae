"""Core migrations 0063 to 0065 (the ledger's balance checks on the server, its one-way outcomes
and TRUNCATE refused, the release failures set aside) go down and up again, and down they leave
what was there before them; 0064 waits for a posting under way without deadlocking with it."""

import logging
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from psycopg import sql

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.migrating import upgrading_in_a_thread
from tests.support.postgres import scratch_database

FIRST = "0063_ledger_balanced_on_server"
# The tables 0064 made refuse TRUNCATE (0070 adds more, `test_ledger_history_migrations`).
JOURNAL_TABLES = ("ledger_transactions", "ledger_postings", "ledger_accounts", "ledger_chains")


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "ledger_guard") as url:
        yield url


def _definitions(url: str) -> tuple[str, str]:
    """The source of `ledger_post` and of the ledger transactions' row trigger."""
    with psycopg.connect(url) as db:
        found = [
            db.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", (name,)).fetchone()
            for name in ("ledger_post", "ledger_refuse_transaction_change")
        ]
    post, outcome = (str(row[0]) for row in found if row is not None)
    return post, outcome


def _state(url: str) -> tuple[bool, bool, int, bool]:
    """Whether ledger_post and the resolutions' write check their legs, whether the transaction
    trigger checks outcomes, how many TRUNCATE triggers the ledger has, and whether the failures
    table exists."""
    post, outcome = _definitions(url)
    with psycopg.connect(url) as db:
        truncate_triggers = db.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgname = ANY(%s)",
            ([f"{table}_no_truncate" for table in JOURNAL_TABLES],),
        ).fetchone()
        table = db.execute("SELECT to_regclass('balance_release_failures')").fetchone()
        write_check = db.execute(
            "SELECT count(*) FROM pg_proc WHERE proname = 'ledger_write_balanced'"
        ).fetchone()
    assert truncate_triggers is not None
    assert table is not None
    assert write_check is not None
    return (
        "its legs sum to" in post and write_check[0] == 1,
        "pending outcome cannot move" in outcome,
        int(truncate_triggers[0]),
        table[0] is not None,
    )


def test_the_ledger_guards_go_down_and_up_again(scratch_core: str) -> None:
    config = alembic_config("core", scratch_core)
    before = ScriptDirectory.from_config(config).get_revision(FIRST).down_revision
    assert isinstance(before, str)
    upgrade("core", scratch_core, before)
    assert _state(scratch_core) == (False, False, 0, False)
    earlier = _definitions(scratch_core)
    upgrade("core", scratch_core, "head")
    assert _state(scratch_core) == (True, True, 4, True)
    command.downgrade(config, before)
    assert _state(scratch_core) == (False, False, 0, False)
    assert _definitions(scratch_core) == earlier  # to the byte
    upgrade("core", scratch_core, "head")
    assert _state(scratch_core) == (True, True, 4, True)


_TRUNCATE_GUARDS = "0064_ledger_outcomes_forward"
# The advisory lock a test holds to keep a posting waiting half-way.
_POSTING_HOLD = 7340064


def _post(url: str, transaction_id: str) -> None:
    """A posting through `ledger_post`, as the journal makes it: 100 from cash to available."""
    with psycopg.connect(url) as db:
        row = db.execute(
            "SELECT outcome FROM ledger_post('acct_1', %s, 'posted', NULL, NULL, '{}', NULL, "
            "'digest', now(), '\\x'::bytea, '\\x'::bytea, ARRAY['available', 'cash'], "
            "ARRAY['usd', 'usd'], ARRAY['la_available', 'la_cash'], ARRAY[false, false], "
            "ARRAY[false, false], ARRAY[100, -100]::bigint[], ARRAY[0, 0]::bigint[], "
            "ARRAY[0, 0]::bigint[], ARRAY[1, 2], ARRAY[100, -100]::bigint[])",
            (transaction_id,),
        ).fetchone()
    assert row == ("written",)


def _waiting(url: str, wait_event: str, query: str) -> bool:
    with psycopg.connect(url, autocommit=True) as watcher:
        row = watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND wait_event = %s AND query ILIKE %s AND datname = current_database()",
            (wait_event, query),
        ).fetchone()
    return row is not None and row[0] > 0


def _wait_until(what: str, seen: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not seen():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("first_posting", "held_at"),
    [
        # A posting to a new merchant creates its chain head and ledger accounts before it
        # writes the transaction and its postings: it waits here holding the first two.
        (True, "INSERT"),
        # A later one only locks those two rows (FOR UPDATE), writes the transaction, the
        # postings, the balances, and the chain head last: it waits here holding all but the
        # head's table.
        (False, "UPDATE"),
    ],
)
def test_the_truncate_guards_wait_for_a_posting_without_a_deadlock(
    scratch_core: str, first_posting: bool, held_at: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = scratch_core
    upgrade("core", url, FIRST)
    with psycopg.connect(url, autocommit=True) as admin:
        # A deadlock would be found in a tenth of a second rather than a whole one.
        admin.execute(
            sql.SQL("ALTER DATABASE {} SET deadlock_timeout = 100").format(
                sql.Identifier(admin.info.dbname)
            )
        )
        admin.execute(
            "INSERT INTO accounts (id, created_at, default_currency, raw_card_access, "
            "fee_percent_bps, fee_fixed_minor, available_delay_days, automatic_payouts, "
            "radar_enabled) VALUES ('acct_1', now(), 'usd', false, 290, 30, 2, false, true)"
        )
    if not first_posting:
        _post(url, "ltx_earlier")
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "CREATE FUNCTION hold_posting() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"PERFORM pg_advisory_xact_lock({_POSTING_HOLD}); RETURN NEW; END $$"
        )
        admin.execute(
            f"CREATE TRIGGER hold_posting BEFORE {held_at} ON ledger_accounts FOR EACH ROW "
            "EXECUTE FUNCTION hold_posting()"
        )
    caplog.set_level(logging.WARNING, logger="remit.storage.migration_locks")
    posting_failure: list[BaseException] = []

    def post() -> None:
        try:
            _post(url, "ltx_held")
        except BaseException as error:  # handed to the test's thread
            posting_failure.append(error)

    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (_POSTING_HOLD,))
        poster = threading.Thread(target=post)
        poster.start()
        try:
            _wait_until(
                "the posting reached ledger_accounts",
                lambda: _waiting(url, "advisory", "%ledger_post%"),
            )
            with upgrading_in_a_thread("core", url, _TRUNCATE_GUARDS) as failure:
                try:
                    # The migration waits for a table the posting holds.
                    _wait_until(
                        "the migration waited for the posting",
                        lambda: _waiting(url, "relation", "%"),
                    )
                finally:
                    holder.execute("SELECT pg_advisory_unlock(%s)", (_POSTING_HOLD,))
        finally:
            poster.join(timeout=30)
    assert not poster.is_alive()
    assert posting_failure == []
    assert failure == []
    # Nor was the migration rolled back to break a deadlock and run again.
    assert [r.getMessage() for r in caplog.records if r.name.startswith("remit.storage")] == []
    assert _state(url)[2] == 4
