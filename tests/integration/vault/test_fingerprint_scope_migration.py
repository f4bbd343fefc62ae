"""Vault migration 0010 records whose fingerprints each card's is comparable with: the cards
already stored are of the one key every account shared (1), and the partial index of the cards
left to re-seal covers them, serving the re-seal's pages; its downgrade puts 0008's index back
and drops the column. Run again after an interruption, the upgrade ends the same way."""

from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from sqlalchemy.dialects import postgresql

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from remit.vault.repository import tokens_to_reseal_query
from tests.support.postgres import scratch_database
from tests.support.vault import reseal_page_plan

_BEFORE = "0009_lost_key_versions"
_AFTER = "0010_cards_fingerprint_scope"
_CHECK = "ck_cards_fingerprint_scope"
_INDEX = "ix_cards_live_to_reseal"
_BUILDING = "ix_cards_live_to_reseal_next"


@pytest.fixture
def scratch_vault(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "fingerprint_scope") as url:
        yield url


def _insert(url: str, token: str, seal_format: int, *, deleted: bool = False) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO cards (token, account_id, livemode, kek_name, kek_version, "
            "wrapped_data_key, number_ciphertext, fingerprint, brand, last4, exp_month, "
            "exp_year, funding, country, billing_details, created_at, seal_format, deleted_at) "
            "VALUES (%s, 'acct_1', false, 'card-kek', 1, '\\x00', '\\x00', 'fp', 'visa', "
            "'4242', 12, 2031, 'credit', 'US', '{}', now(), %s, CASE WHEN %s THEN now() END)",
            (token, seal_format, deleted),
        )


def _scopes(url: str) -> dict[str, int]:
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT token, fingerprint_scope FROM cards").fetchall()
    return {str(token): int(scope) for token, scope in rows}


def _indexes(url: str) -> dict[str, str]:
    """The re-seal's indexes, by name, with their definitions."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname IN (%s, %s)",
            (_INDEX, _BUILDING),
        ).fetchall()
    return {str(name): str(definition) for name, definition in rows}


def _check_validated(url: str) -> bool | None:
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT convalidated FROM pg_constraint WHERE conname = %s", (_CHECK,)
        ).fetchone()
    return None if row is None else bool(row[0])


def _to_reseal(url: str) -> list[str]:
    """The tokens of a re-seal's first page, as the vault reads it."""
    compiled = tokens_to_reseal_query(100, after=None).compile(
        dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
        compile_kwargs={"literal_binds": True},
    )
    with psycopg.connect(url) as connection:
        return [str(row[0]) for row in connection.execute(str(compiled)).fetchall()]


def _page_plan(url: str) -> str:
    compiled = tokens_to_reseal_query(100, after="vtok_a").compile(
        dialect=postgresql.dialect(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]
    )
    values = [compiled.params[name] for name in compiled.positiontup or ()]
    return reseal_page_plan(url, compiled.string, values)


def test_stored_cards_are_of_the_shared_key_and_the_reseal_reads_them_by_its_index(
    scratch_vault: str,
) -> None:
    upgrade("vault", scratch_vault, _BEFORE)
    _insert(scratch_vault, "vtok_a_old", 3)
    _insert(scratch_vault, "vtok_b_account_bound", 2)
    _insert(scratch_vault, "vtok_c_shredded", 3, deleted=True)

    upgrade("vault", scratch_vault, _AFTER)

    assert _scopes(scratch_vault) == {
        "vtok_a_old": 1, "vtok_b_account_bound": 1, "vtok_c_shredded": 1,
    }  # fmt: skip
    assert _check_validated(scratch_vault) is True
    indexes = _indexes(scratch_vault)
    assert set(indexes) == {_INDEX}
    assert "fingerprint_scope < 2" in indexes[_INDEX]
    with psycopg.connect(scratch_vault, autocommit=True) as connection:
        connection.execute("UPDATE cards SET fingerprint_scope = 2 WHERE token = 'vtok_a_old'")
        with pytest.raises(psycopg.errors.CheckViolation):
            connection.execute("UPDATE cards SET fingerprint_scope = 3")
    # Fingerprinted under its account and metadata-bound: nothing left to do. Format 2 still
    # needs its re-seal, and a shredded card none.
    assert _to_reseal(scratch_vault) == ["vtok_b_account_bound"]
    plan = _page_plan(scratch_vault)
    assert f"Index Only Scan using {_INDEX} on cards" in plan, plan
    assert "Sort" not in plan


def test_an_interrupted_upgrade_run_again_ends_the_same_and_the_downgrade_restores_0008(
    scratch_vault: str,
) -> None:
    upgrade("vault", scratch_vault, _AFTER)
    _insert(scratch_vault, "vtok_a", 3)
    config = alembic_config("vault", scratch_vault)

    # As left by an upgrade stopped once the new index took its place, before its version was
    # recorded: run again, it rebuilds the index and ends as the first run would have.
    with psycopg.connect(scratch_vault, autocommit=True) as connection:
        connection.execute("UPDATE alembic_version SET version_num = %s", (_BEFORE,))
    upgrade("vault", scratch_vault, _AFTER)
    indexes = _indexes(scratch_vault)
    assert set(indexes) == {_INDEX}
    assert "fingerprint_scope < 2" in indexes[_INDEX]
    assert _scopes(scratch_vault) == {"vtok_a": 1}

    command.downgrade(config, _BEFORE)
    indexes = _indexes(scratch_vault)
    assert set(indexes) == {_INDEX}
    assert "fingerprint_scope" not in indexes[_INDEX]
    assert "seal_format < 3" in indexes[_INDEX]
    with psycopg.connect(scratch_vault) as connection:
        columns = connection.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'cards' AND column_name = 'fingerprint_scope'"
        ).fetchall()
    assert columns == []
    upgrade("vault", scratch_vault)
    assert _scopes(scratch_vault) == {"vtok_a": 1}
