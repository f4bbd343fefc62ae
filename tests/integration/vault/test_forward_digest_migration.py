"""Vault migration 0003 adds the digest of a forward's parameters to its recorded answer: the
answers recorded before it are kept, without a digest (they replay to a forward of their card,
`remit.vault.forward_replay`), and a downgrade drops the digests and keeps the answers."""

from collections.abc import Iterator

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

BEFORE = "0002_cards_live_created"
DIGEST = "0003_forward_request_digest"


@pytest.fixture
def scratch_vault(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "forward_digest") as url:
        yield url


def _forward_columns(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'forwards' ORDER BY ordinal_position"
        ).fetchall()
    return [str(row[0]) for row in rows]


def test_the_digest_is_added_empty_on_earlier_answers_and_dropped_again(scratch_vault: str) -> None:
    upgrade("vault", scratch_vault, BEFORE)
    with psycopg.connect(scratch_vault, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO forwards (account_id, reference, token, destination, result, created_at) "
            "VALUES ('acct_1', 'op_before', 'vtok_1', 'acquirer', '\\x0801', now())"
        )
    upgrade("vault", scratch_vault, DIGEST)
    assert "request_digest" in _forward_columns(scratch_vault)
    with psycopg.connect(scratch_vault, autocommit=True) as connection:
        kept = connection.execute(
            "SELECT reference, result, request_digest FROM forwards"
        ).fetchall()
        assert kept == [("op_before", b"\x08\x01", None)]
        connection.execute(
            "INSERT INTO forwards (account_id, reference, token, destination, result, "
            "request_digest, created_at) "
            "VALUES ('acct_1', 'op_after', 'vtok_1', 'acquirer', '\\x0801', %s, now())",
            (bytes(32),),
        )
    command.downgrade(alembic_config("vault", scratch_vault), BEFORE)
    assert "request_digest" not in _forward_columns(scratch_vault)
    with psycopg.connect(scratch_vault) as connection:
        references = connection.execute("SELECT reference FROM forwards ORDER BY 1").fetchall()
    assert references == [("op_after",), ("op_before",)]
    # And up again, as a redeploy after a rollback would.
    upgrade("vault", scratch_vault)
    assert "request_digest" in _forward_columns(scratch_vault)
