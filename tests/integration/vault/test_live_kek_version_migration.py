"""Vault migration 0005 indexes the cards not deleted by (key version, token), the order and
starting point of each page of a re-wrap, in place of the index on the key version alone; its
downgrade puts that index back. The cards are left as they are either way."""

from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from psycopg import sql
from sqlalchemy.dialects import postgresql

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from remit.vault.repository import cards_wrapped_below_query
from remit.vault.tables import cards
from tests.support.postgres import scratch_database

_BEFORE = "0004_key_check_values"
_AFTER = "0005_cards_live_kek_version"
_LIVE = "ix_cards_live_kek_version"
_SUPERSEDED = "ix_cards_kek_version"


@pytest.fixture
def scratch_vault(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "live_kek_version") as url:
        yield url


def _indexes(url: str) -> dict[str, str]:
    """The definitions of the indexes of cards' key version, by name; every one valid."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisvalid FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = 'cards'::regclass AND c.relname LIKE '%kek_version%'"
        ).fetchall()
    assert all(valid for _, _, valid in rows)
    return {str(name): str(definition) for name, definition, _ in rows}


def _rewrap_page_plan(url: str) -> str:
    """How the database reads a re-wrap's page after its first, the query the vault runs, as
    planned for any parameters: the driver prepares a statement run often on one connection,
    and PostgreSQL may then plan it once for all of them."""
    # Its token only: the columns added by later revisions are not there yet.
    query = cards_wrapped_below_query(3, 500, after=(1, "vtok_b")).with_only_columns(cards.c.token)
    compiled = query.compile(
        dialect=postgresql.dialect(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]
    )
    values = [compiled.params[name] for name in compiled.positiontup or ()]
    with psycopg.connect(url) as connection:
        # Few rows: without this the planner reads them all whatever indexes there are.
        connection.execute("SET enable_seqscan = off")
        connection.execute("SET plan_cache_mode = force_generic_plan")
        # Typed as the columns and the limit they stand for.
        types = ", ".join("text" if isinstance(value, str) else "integer" for value in values)
        connection.execute(f"PREPARE rewrap_page ({types}) AS {compiled.string}")
        arguments = sql.SQL(", ").join(sql.Literal(value) for value in values)
        explain = sql.SQL("EXPLAIN EXECUTE rewrap_page({})").format(arguments)
        rows = connection.execute(explain).fetchall()
        connection.rollback()
    return "\n".join(str(row[0]) for row in rows)


def _tokens(url: str) -> list[tuple[str, int, bool]]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT token, kek_version, deleted_at IS NULL FROM cards ORDER BY token"
        ).fetchall()
    return [(str(token), int(version), bool(live)) for token, version, live in rows]


def test_live_cards_are_indexed_by_key_version_and_token_and_the_downgrade_restores_the_index(
    scratch_vault: str,
) -> None:
    upgrade("vault", scratch_vault, _BEFORE)
    with psycopg.connect(scratch_vault, autocommit=True) as connection:
        for token, version, deleted in (("vtok_a", 1, False), ("vtok_b", 1, True),
                                        ("vtok_c", 2, False)):  # fmt: skip
            connection.execute(
                "INSERT INTO cards (token, account_id, livemode, kek_name, kek_version, "
                "wrapped_data_key, number_ciphertext, fingerprint, brand, last4, exp_month, "
                "exp_year, funding, country, billing_details, created_at, deleted_at) VALUES "
                "(%s, 'acct_1', false, 'card-kek', %s, '\\x00', '\\x00', 'fp', 'visa', '4242', "
                "12, 2031, 'credit', 'US', '{}', now(), CASE WHEN %s THEN now() END)",
                (token, version, deleted),
            )
    before = _tokens(scratch_vault)
    assert _indexes(scratch_vault) == {
        _SUPERSEDED: f"CREATE INDEX {_SUPERSEDED} ON public.cards USING btree (kek_version)"
    }
    assert "Sort" in _rewrap_page_plan(scratch_vault)

    upgrade("vault", scratch_vault, _AFTER)
    assert _indexes(scratch_vault) == {
        _LIVE: f"CREATE INDEX {_LIVE} ON public.cards USING btree (kek_version, token) "
        "WHERE (deleted_at IS NULL)"
    }
    plan = _rewrap_page_plan(scratch_vault)
    # One range of the index, from the page's starting point, already in order.
    assert f"Index Scan using {_LIVE} on cards" in plan
    assert "Index Cond: ((kek_version < $1) AND (ROW(kek_version, token) > ROW($2, $3)))" in plan, (
        plan
    )
    assert "Sort" not in plan
    assert _tokens(scratch_vault) == before

    command.downgrade(alembic_config("vault", scratch_vault), _BEFORE)
    assert _indexes(scratch_vault) == {
        _SUPERSEDED: f"CREATE INDEX {_SUPERSEDED} ON public.cards USING btree (kek_version)"
    }
    assert _tokens(scratch_vault) == before
    # And up again, as a redeploy after a rollback would.
    upgrade("vault", scratch_vault)
    assert list(_indexes(scratch_vault)) == [_LIVE]
