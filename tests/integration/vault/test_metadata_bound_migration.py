"""Vault migration 0008 admits seal format 3 (metadata-bound) and indexes the cards of formats
1 and 2 for the re-seal; its downgrade puts 0007's constraint and 0006's index back, and stops,
naming them, while cards not deleted are of format 3, which the earlier vault cannot open."""

from collections.abc import Iterator

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database
from tests.support.vault import reseal_page_plan

_BEFORE = "0007_cards_seal_format_check"
_AFTER = "0008_cards_metadata_bound"
_CHECK = "ck_cards_seal_format"
_NEW_INDEX = "ix_cards_live_to_reseal"
_OLD_INDEX = "ix_cards_live_token_bound"


@pytest.fixture
def scratch_vault(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "metadata_bound") as url:
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


def _schema(url: str) -> tuple[str | None, bool | None, set[str]]:
    """The seal format CHECK's definition, whether it is validated, and the re-seal indexes."""
    with psycopg.connect(url) as connection:
        check = connection.execute(
            "SELECT pg_get_constraintdef(oid), convalidated FROM pg_constraint WHERE conname = %s",
            (_CHECK,),
        ).fetchone()
        indexes = connection.execute(
            "SELECT indexname FROM pg_indexes WHERE indexname IN (%s, %s)",
            (_NEW_INDEX, _OLD_INDEX),
        ).fetchall()
    definition, validated = (None, None) if check is None else (str(check[0]), bool(check[1]))
    return definition, validated, {str(row[0]) for row in indexes}


# A re-seal's page as the vault of 0008 read it: cards of formats 1 and 2 (0010 widens it).
_RESEAL_PAGE_0008 = (
    "SELECT cards.token FROM cards WHERE cards.deleted_at IS NULL AND cards.seal_format < 3 "
    "AND cards.token > $1 ORDER BY cards.token LIMIT $2"
)


def _page_plan(url: str) -> str:
    return reseal_page_plan(url, _RESEAL_PAGE_0008, ["vtok_a", 100])


def test_format_3_is_admitted_and_the_reseal_reads_formats_1_and_2_by_their_index(
    scratch_vault: str,
) -> None:
    upgrade("vault", scratch_vault, _BEFORE)
    _insert(scratch_vault, "vtok_token_bound", 1)
    _insert(scratch_vault, "vtok_account_bound", 2)
    with pytest.raises(psycopg.errors.CheckViolation):
        _insert(scratch_vault, "vtok_early", 3)

    upgrade("vault", scratch_vault, _AFTER)

    definition, validated, indexes = _schema(scratch_vault)
    assert definition is not None
    assert "3" in definition
    assert validated is True
    assert indexes == {_NEW_INDEX}
    _insert(scratch_vault, "vtok_metadata_bound", 3)
    with pytest.raises(psycopg.errors.CheckViolation):
        _insert(scratch_vault, "vtok_by_hand", 4)
    plan = _page_plan(scratch_vault)
    assert f"Index Only Scan using {_NEW_INDEX} on cards" in plan, plan
    assert "Sort" not in plan


def test_the_downgrade_stops_while_live_cards_are_of_format_3_and_then_restores_0007(
    scratch_vault: str,
) -> None:
    upgrade("vault", scratch_vault, _AFTER)
    _insert(scratch_vault, "vtok_live", 3)
    _insert(scratch_vault, "vtok_shredded", 3, deleted=True)
    _insert(scratch_vault, "vtok_old", 2)
    config = alembic_config("vault", scratch_vault)

    with pytest.raises(Exception, match="vtok_live") as stopped:
        command.downgrade(config, _BEFORE)
    assert stopped.typename == "MetadataBoundCardsError"
    assert "vtok_shredded" not in str(stopped.value)
    assert _schema(scratch_vault)[2] == {_NEW_INDEX}

    with psycopg.connect(scratch_vault, autocommit=True) as connection:
        connection.execute("DELETE FROM cards WHERE token = 'vtok_live'")
    command.downgrade(config, _BEFORE)

    definition, validated, indexes = _schema(scratch_vault)
    assert definition is not None
    assert "3" not in definition
    assert validated is True
    assert indexes == {_OLD_INDEX}
    with psycopg.connect(scratch_vault) as connection:
        rows = connection.execute("SELECT token, seal_format FROM cards").fetchall()
    formats = {str(token): int(seal_format) for token, seal_format in rows}
    # A shredded card holds no seal: its format is set back to one the earlier vault knows.
    assert formats == {"vtok_shredded": 2, "vtok_old": 2}
    upgrade("vault", scratch_vault)
    assert _schema(scratch_vault)[2] == {_NEW_INDEX}
