"""Core migrations 0063 to 0065 (the ledger's balance checks on the server, its one-way outcomes
and TRUNCATE refused, the release failures set aside) go down and up again, and down they leave
what was there before them."""

from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
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
