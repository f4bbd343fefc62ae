"""Core migration 0082 (a posting's ledger account is its own merchant's) goes down and up
again, and leaves its foreign key NOT VALID, still checking new postings, over a posting that
already moves money on another merchant's ledger account."""

from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

REVISION = "0082_ledger_posting_owner"
OWNER_FK = "fk_ledger_postings_ledger_account_owner"
ID_FK = "fk_ledger_postings_ledger_account_id_ledger_accounts"


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "ledger_posting_owner") as url:
        yield url


def _foreign_keys(url: str) -> dict[str, bool]:
    """The postings' foreign keys to ledger_accounts, by name: whether each is validated."""
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT conname, convalidated FROM pg_constraint "
            "WHERE conrelid = 'ledger_postings'::regclass "
            "AND confrelid = 'ledger_accounts'::regclass AND contype = 'f'"
        ).fetchall()
    return {str(name): bool(valid) for name, valid in rows}


def _past_the_triggers(url: str, *statements: str) -> None:
    with psycopg.connect(url) as db:
        db.execute("SET LOCAL session_replication_role = replica")
        for statement in statements:
            db.execute(statement)


def test_the_owner_foreign_key_goes_down_and_up_again(
    scratch_core: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = alembic_config("core", scratch_core)
    before = ScriptDirectory.from_config(config).get_revision(REVISION).down_revision
    assert isinstance(before, str)
    upgrade("core", scratch_core, before)
    assert _foreign_keys(scratch_core) == {ID_FK: True}
    _past_the_triggers(
        scratch_core,
        "INSERT INTO ledger_accounts VALUES "
        "('la_v', 'acct_v', 'wallet', 'usd', false, 0, 0, 0, now(), now()), "
        "('la_t', 'acct_t', 'wallet', 'usd', false, 100, 0, 0, now(), now())",
        "INSERT INTO ledger_postings (account_id, transaction_id, ledger_account_id, "
        "amount_minor) VALUES ('acct_v', 'v1', 'la_t', 100)",
    )

    upgrade("core", scratch_core, "head")
    assert _foreign_keys(scratch_core) == {OWNER_FK: False}
    assert "left NOT VALID" in caplog.text

    _past_the_triggers(scratch_core, "DELETE FROM ledger_postings")
    command.downgrade(config, before)
    assert _foreign_keys(scratch_core) == {ID_FK: True}
    upgrade("core", scratch_core, "head")
    assert _foreign_keys(scratch_core) == {OWNER_FK: True}
