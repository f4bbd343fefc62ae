"""Core migrations 0070 to 0072 (the ledger's history refuses TRUNCATE, a resolution's write
checks its legs against the stored reservation, a reversal's against what it reverses) go down
and up again, and down they leave what was there before them."""

from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

FIRST = "0070_ledger_history_no_truncate"
HISTORY_TABLES = (
    "balance_transactions",
    "ledger_events",
    "payouts",
    "reconciliations",
    "reconciliation_rows",
)


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "ledger_history") as url:
        yield url


def _state(url: str) -> tuple[int, int]:
    """How many of the history's tables refuse TRUNCATE, and how many of the checks of the
    stored reservation and of the reversed transaction the write of resolutions and reversals
    has (0 to 2)."""
    with psycopg.connect(url) as db:
        triggers = db.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgname = ANY(%s)",
            ([f"{table}_no_truncate" for table in HISTORY_TABLES],),
        ).fetchone()
        check = db.execute(
            "SELECT count(*) FROM pg_proc "
            "WHERE proname IN ('ledger_write_releases', 'ledger_write_reversal')"
        ).fetchone()
    assert triggers is not None
    assert check is not None
    return int(triggers[0]), int(check[0])


def test_the_history_guards_go_down_and_up_again(scratch_core: str) -> None:
    config = alembic_config("core", scratch_core)
    before = ScriptDirectory.from_config(config).get_revision(FIRST).down_revision
    assert isinstance(before, str)
    upgrade("core", scratch_core, before)
    assert _state(scratch_core) == (0, 0)
    upgrade("core", scratch_core, "head")
    assert _state(scratch_core) == (len(HISTORY_TABLES), 2)
    command.downgrade(config, before)
    assert _state(scratch_core) == (0, 0)
    upgrade("core", scratch_core, "head")
    assert _state(scratch_core) == (len(HISTORY_TABLES), 2)
