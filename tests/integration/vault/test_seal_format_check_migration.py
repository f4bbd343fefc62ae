"""Vault migration 0007 lets a card hold only a seal format the vault knows (1 or 2). A card
already holding another value is left as it is and stops the upgrade, naming it, while the
constraint (not yet valid) refuses any new one; once it is set back the upgrade carries on.
The downgrade drops the constraint."""

from collections.abc import Iterator

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

_BEFORE = "0006_cards_seal_format"
_AFTER = "0007_cards_seal_format_check"
_NAME = "ck_cards_seal_format"


@pytest.fixture
def scratch_vault(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "seal_format_check") as url:
        yield url


def _insert(url: str, token: str, seal_format: int) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO cards (token, account_id, livemode, kek_name, kek_version, "
            "wrapped_data_key, number_ciphertext, fingerprint, brand, last4, exp_month, "
            "exp_year, funding, country, billing_details, created_at, seal_format) VALUES "
            "(%s, 'acct_1', false, 'card-kek', 1, '\\x00', '\\x00', 'fp', 'visa', '4242', "
            "12, 2031, 'credit', 'US', '{}', now(), %s)",
            (token, seal_format),
        )


def _validated(url: str) -> bool | None:
    """Whether the constraint is validated; None if there is none."""
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT convalidated FROM pg_constraint WHERE conname = %s", (_NAME,)
        ).fetchone()
    return None if row is None else bool(row[0])


def test_an_unknown_format_stops_the_upgrade_until_set_back_and_none_can_be_written(
    scratch_vault: str,
) -> None:
    upgrade("vault", scratch_vault, _BEFORE)
    _insert(scratch_vault, "vtok_good", 2)
    _insert(scratch_vault, "vtok_by_hand", 3)

    with pytest.raises(Exception, match="vtok_by_hand") as failed:
        upgrade("vault", scratch_vault, _AFTER)
    assert failed.typename == "UnknownSealFormatError"
    assert "vtok_good" not in str(failed.value)
    # Left in place, not yet valid: it already refuses a new unknown value.
    assert _validated(scratch_vault) is False
    with pytest.raises(psycopg.errors.CheckViolation):
        _insert(scratch_vault, "vtok_new", 7)

    with psycopg.connect(scratch_vault, autocommit=True) as connection:
        connection.execute("UPDATE cards SET seal_format = 2 WHERE token = 'vtok_by_hand'")
    upgrade("vault", scratch_vault, _AFTER)
    assert _validated(scratch_vault) is True
    with pytest.raises(psycopg.errors.CheckViolation):
        _insert(scratch_vault, "vtok_new", 0)

    command.downgrade(alembic_config("vault", scratch_vault), _BEFORE)
    assert _validated(scratch_vault) is None
    _insert(scratch_vault, "vtok_after_downgrade", 3)
