"""Core migration 0085 gives each dispute opened before it its charge's card brand, which its
network reason code depends on; the downgrade drops the column."""

from collections.abc import Iterator

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

_BEFORE = "0084_disputes"
_AFTER = "0085_dispute_card_brand"

_CHARGE = (
    "INSERT INTO charges (id, account_id, payment_intent_id, amount_minor, "
    "amount_captured_minor, amount_refunded_minor, currency, status, captured, "
    "capture_requested, payment_method_id, card, metadata, created_at, updated_at, dispute_id) "
    "VALUES (%s, 'acct_1', %s, 1000, 1000, 0, 'usd', 'succeeded', true, false, 'pm_1', %s, "
    "'{}', now(), now(), %s)"
)
_DISPUTE = (
    "INSERT INTO disputes (id, account_id, charge_id, payment_intent_id, amount_minor, currency, "
    "reason, status, evidence, evidence_due_by, submission_count, past_due, "
    "balance_transaction_ids, metadata, created_at, updated_at) VALUES (%s, 'acct_1', %s, %s, "
    "1000, 'usd', 'fraudulent', 'needs_response', '{}', now(), 0, false, '{}', '{}', now(), "
    "now())"
)


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "dispute_card_brand") as url:
        yield url


def test_disputes_opened_before_are_given_their_charges_brand(scratch_core: str) -> None:
    upgrade("core", scratch_core, _BEFORE)
    with psycopg.connect(scratch_core, autocommit=True) as db:
        db.execute("SET session_replication_role = replica")  # rows without their account
        for number, brand in (("1", "visa"), ("2", "mastercard")):
            charge_id, intent_id = f"ch_{number}", f"pi_{number}"
            db.execute(_CHARGE, (charge_id, intent_id, f'{{"brand": "{brand}"}}', f"dp_{number}"))
            db.execute(_DISPUTE, (f"dp_{number}", charge_id, intent_id))

    upgrade("core", scratch_core, _AFTER)
    with psycopg.connect(scratch_core) as db:
        rows = db.execute("SELECT id, card_brand FROM disputes ORDER BY id").fetchall()
    assert rows == [("dp_1", "visa"), ("dp_2", "mastercard")]

    command.downgrade(alembic_config("core", scratch_core), _BEFORE)
    with psycopg.connect(scratch_core) as db:
        columns = db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'disputes'"
        ).fetchall()
    assert ("card_brand",) not in columns
