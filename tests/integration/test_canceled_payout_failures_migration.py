"""Core migration 0080 names, on each payout canceled before it, the balance transaction that
returned its money (Stripe's failure_balance_transaction); the downgrade clears only those."""

from collections.abc import Iterator

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

_BEFORE = "0079_idempotency_finished_at"
_AFTER = "0080_canceled_payout_failures"

_ACCOUNT = (
    "INSERT INTO accounts (id, created_at, default_currency, raw_card_access, "
    "fee_percent_bps, fee_fixed_minor, available_delay_days, automatic_payouts, "
    "radar_enabled) VALUES (%s, now(), 'usd', false, 290, 30, 2, false, true)"
)
_ROW = (
    "INSERT INTO balance_transactions (id, account_id, ledger_transaction_id, type, "
    "reporting_category, amount, fee, net, currency, status, available_on, created_at, "
    "fee_details, source_id, payout_id) VALUES (%s, %s, %s, %s, %s, %s, 0, %s, 'usd', "
    "'available', now(), now(), '[]', %s, %s)"
)
_PAYOUT = (
    "INSERT INTO payouts (id, account_id, amount, currency, status, arrival_date, automatic, "
    "method, source_type, balance_transaction_id, failure_balance_transaction_id, metadata, "
    "created_at, updated_at) VALUES (%s, %s, 500, 'usd', %s, now(), false, 'standard', "
    "'card', %s, %s, '{}', now(), now())"
)


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "canceled_payout_failures") as url:
        yield url


def _payout(
    db: psycopg.Connection[tuple[object, ...]],
    account_id: str,
    payout_id: str,
    status: str,
    returned_by: str | None = None,
    failure_row: str | None = None,
) -> None:
    db.execute(
        _ROW,
        (f"txn_{payout_id}", account_id, f"{payout_id}:payout", "payout", "payout", -500,
         -500, payout_id, payout_id),
    )  # fmt: skip
    if returned_by is not None:
        db.execute(
            _ROW,
            (f"txn_{payout_id}_back", account_id, f"{payout_id}:{returned_by}",
             f"payout_{returned_by}", "payout_reversal", 500, 500, payout_id, payout_id),
        )  # fmt: skip
    db.execute(_PAYOUT, (payout_id, account_id, status, f"txn_{payout_id}", failure_row))


def _failure_rows(url: str) -> dict[str, str | None]:
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT id, failure_balance_transaction_id FROM payouts").fetchall()
    return {str(payout_id): row for payout_id, row in rows}


def test_canceled_payouts_name_their_cancel_row_and_the_downgrade_clears_only_those(
    scratch_core: str,
) -> None:
    upgrade("core", scratch_core, _BEFORE)
    with psycopg.connect(scratch_core, autocommit=True) as db:
        for account_id in ("acct_1", "acct_2"):
            db.execute(_ACCOUNT, (account_id,))
        _payout(db, "acct_1", "po_canceled", "canceled", returned_by="cancel")
        # A row of another account naming the payout's cancel is not its own.
        _payout(db, "acct_2", "po_other", "canceled")
        db.execute(
            _ROW,
            ("txn_stray", "acct_1", "po_other:cancel", "payout_cancel", "payout_reversal", 500,
             500, "po_other", "po_other"),
        )  # fmt: skip
        _payout(
            db, "acct_1", "po_failed", "failed", returned_by="failure",
            failure_row="txn_po_failed_back",
        )  # fmt: skip
        _payout(db, "acct_1", "po_paid", "paid")

    upgrade("core", scratch_core, _AFTER)
    assert _failure_rows(scratch_core) == {
        "po_canceled": "txn_po_canceled_back",
        "po_other": None,
        "po_failed": "txn_po_failed_back",
        "po_paid": None,
    }

    command.downgrade(alembic_config("core", scratch_core), _BEFORE)
    assert _failure_rows(scratch_core) == {
        "po_canceled": None,
        "po_other": None,
        "po_failed": "txn_po_failed_back",
        "po_paid": None,
    }
