"""Vault migration 0006 records each card's seal format: the cards already stored are of the
token-bound format (1), and the partial index of those left to re-seal serves the re-seal's
pages; its downgrade drops both. The cards are left as they are either way."""

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from alembic import command

import remit.storage.online_index as online_index
from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database
from tests.support.vault import reseal_page_plan

_BEFORE = "0005_cards_live_kek_version"
_AFTER = "0006_cards_seal_format"
_INDEX = "ix_cards_live_token_bound"


@pytest.fixture
def scratch_vault(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "seal_format") as url:
        yield url


def _cards(url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT token, kek_version, deleted_at IS NULL FROM cards ORDER BY token"
        ).fetchall()
    return [tuple(row) for row in rows]


def _seal_formats(url: str) -> dict[str, int]:
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT token, seal_format FROM cards").fetchall()
    return {str(token): int(seal_format) for token, seal_format in rows}


# A re-seal's page as the vault of 0006 read it: cards of format 1 only (0008 widens it).
_TOKEN_BOUND_PAGE = (
    "SELECT cards.token FROM cards WHERE cards.deleted_at IS NULL AND cards.seal_format = 1 "
    "AND cards.token > $1 ORDER BY cards.token LIMIT $2"
)


def test_stored_cards_are_token_bound_and_indexed_for_the_reseal_until_the_downgrade(
    scratch_vault: str,
) -> None:
    upgrade("vault", scratch_vault, _BEFORE)
    with psycopg.connect(scratch_vault, autocommit=True) as connection:
        for token, deleted in (("vtok_a", False), ("vtok_b", True), ("vtok_c", False)):
            connection.execute(
                "INSERT INTO cards (token, account_id, livemode, kek_name, kek_version, "
                "wrapped_data_key, number_ciphertext, fingerprint, brand, last4, exp_month, "
                "exp_year, funding, country, billing_details, created_at, deleted_at) VALUES "
                "(%s, 'acct_1', false, 'card-kek', 1, '\\x00', '\\x00', 'fp', 'visa', '4242', "
                "12, 2031, 'credit', 'US', '{}', now(), CASE WHEN %s THEN now() END)",
                (token, deleted),
            )
    before = _cards(scratch_vault)

    upgrade("vault", scratch_vault, _AFTER)
    assert _seal_formats(scratch_vault) == {"vtok_a": 1, "vtok_b": 1, "vtok_c": 1}
    plan = reseal_page_plan(scratch_vault, _TOKEN_BOUND_PAGE, ["vtok_a", 100])
    assert f"Index Only Scan using {_INDEX} on cards" in plan, plan
    assert "Sort" not in plan
    assert _cards(scratch_vault) == before

    command.downgrade(alembic_config("vault", scratch_vault), _BEFORE)
    with psycopg.connect(scratch_vault) as connection:
        columns = connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'cards'"
        ).fetchall()
    assert ("seal_format",) not in columns
    assert _cards(scratch_vault) == before
    upgrade("vault", scratch_vault)
    assert _seal_formats(scratch_vault) == {"vtok_a": 1, "vtok_b": 1, "vtok_c": 1}


class StoppedDuringTheIndexBuildError(Exception):
    pass


def test_an_upgrade_stopped_while_the_index_is_built_runs_again_to_its_end(
    scratch_vault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The column is committed before the index is built without blocking card saves; an
    upgrade stopped in between (a deploy's timeout, a second Ctrl-C, a crash) has not recorded
    0006, so the next start runs it again from the start, and must get through."""
    upgrade("vault", scratch_vault, _BEFORE)

    def stopped(*args: Any, **kwargs: Any) -> None:
        raise StoppedDuringTheIndexBuildError

    with monkeypatch.context() as patched:
        patched.setattr(online_index, "create_index_online", stopped)
        with pytest.raises(StoppedDuringTheIndexBuildError):
            upgrade("vault", scratch_vault, _AFTER)
    upgrade("vault", scratch_vault, _AFTER)
    with psycopg.connect(scratch_vault) as connection:
        version = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        index = connection.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (_INDEX,)
        ).fetchone()
    assert version == (_AFTER,)
    assert index == (True,)
