"""A canceled payout names the balance transaction that returned its money.

Stripe's `payout.failure_balance_transaction`: "If the payout failed or was canceled, this will
be the ID of the balance transaction that reversed the initial balance transaction". remit set
it for a failed payout (its `payout_failure` row) but not for a canceled one, whose
`payout_cancel` row (the ledger's `po_...:cancel`) went unnamed; `cancel_payout` sets it now,
and `remit ledger verify` holds both to it. The payouts canceled before are given theirs here:
the row of the same account showing `<payout>:cancel` (the balance transactions' unique key on
account and ledger transaction finds it by index). Few payouts are canceled, so one statement.

The downgrade clears it again for canceled payouts whose field names their cancel row, as the
earlier version wrote them and its verify expects them (it holds the field to a failure row).

Revision ID: 0080_canceled_payout_failures
Revises: 0078_delivery_jobs_by_delivery
"""

from alembic import op

revision = "0080_canceled_payout_failures"
down_revision = "0079_idempotency_finished_at"
branch_labels = None
depends_on = None

# The colon is a literal of its own: op.execute reads ":cancel" in a literal as a parameter.
_UPGRADE = """
UPDATE payouts AS p SET failure_balance_transaction_id = bt.id
FROM balance_transactions AS bt
WHERE p.status = 'canceled' AND p.failure_balance_transaction_id IS NULL
    AND bt.account_id = p.account_id AND bt.ledger_transaction_id = p.id || ':' || 'cancel'
"""

_DOWNGRADE = """
UPDATE payouts AS p SET failure_balance_transaction_id = NULL
FROM balance_transactions AS bt
WHERE p.status = 'canceled' AND p.failure_balance_transaction_id = bt.id
    AND bt.account_id = p.account_id AND bt.ledger_transaction_id = p.id || ':' || 'cancel'
"""


def upgrade() -> None:
    op.execute(_UPGRADE)


def downgrade() -> None:
    op.execute(_DOWNGRADE)
