"""Core migration 0088 marks the payment methods and tokens stored before it as not known to
hold their account's own fingerprint, for the conversion to check with the vault; the downgrade
drops the marks and keeps the fingerprints."""

from collections.abc import Iterator

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

_BEFORE = "0087_event_order"
_AFTER = "0088_card_fingerprint_scope"

_METHOD = (
    "INSERT INTO payment_methods (id, account_id, vault_token, brand, last4, exp_month, "
    "exp_year, fingerprint, funding, billing_details, metadata, created_at) VALUES "
    "('pm_1', 'acct_1', 'vtok_1', 'visa', '4242', 12, 2030, 'SharedFingerprnt', 'credit', "
    "'{}', '{}', now())"
)
_TOKEN = (
    "INSERT INTO tokens (id, account_id, card_id, vault_token, brand, last4, exp_month, "
    "exp_year, fingerprint, funding, address, metadata, used, created_at) VALUES "
    "('tok_1', 'acct_1', 'card_1', 'vtok_1', 'visa', '4242', 12, 2030, 'SharedFingerprnt', "
    "'credit', '{}', '{}', false, now())"
)
_TO_CONVERT = (
    "SELECT id FROM payment_methods WHERE fingerprint_scope = 1 "
    "UNION ALL SELECT id FROM tokens WHERE fingerprint_scope = 1 ORDER BY id"
)


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "card_fingerprint_scope") as url:
        yield url


def _columns(url: str, table: str) -> set[str]:
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,)
        ).fetchall()
    return {row[0] for row in rows}


def test_rows_stored_before_are_left_to_convert_and_a_downgrade_keeps_their_fingerprints(
    scratch_core: str,
) -> None:
    upgrade("core", scratch_core, _BEFORE)
    with psycopg.connect(scratch_core, autocommit=True) as db:
        db.execute("SET session_replication_role = replica")  # rows without their account
        db.execute(_METHOD)
        db.execute(_TOKEN)

    upgrade("core", scratch_core, _AFTER)
    with psycopg.connect(scratch_core) as db:
        assert db.execute(_TO_CONVERT).fetchall() == [("pm_1",), ("tok_1",)]
        indexes = db.execute(
            "SELECT indexname FROM pg_indexes WHERE indexname LIKE '%fingerprint_to_convert'"
            " ORDER BY indexname"
        ).fetchall()
        assert indexes == [
            ("ix_payment_methods_fingerprint_to_convert",),
            ("ix_tokens_fingerprint_to_convert",),
        ]
        with pytest.raises(psycopg.errors.CheckViolation):
            db.execute("UPDATE payment_methods SET fingerprint_scope = 3")

    command.downgrade(alembic_config("core", scratch_core), _BEFORE)
    assert "fingerprint_scope" not in _columns(scratch_core, "payment_methods")
    assert "fingerprint_scope" not in _columns(scratch_core, "tokens")
    with psycopg.connect(scratch_core) as db:
        fingerprints = db.execute("SELECT fingerprint FROM payment_methods").fetchall()
    assert fingerprints == [("SharedFingerprnt",)]
