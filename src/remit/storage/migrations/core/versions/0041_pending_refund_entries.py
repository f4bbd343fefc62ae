"""A pending refund shows its balance transaction; a failed or canceled one, the one giving
its money back.

Since this revision the ledger writes a refund's balance transaction when it places the
refund's hold, as Stripe writes it when the refund is created, and keeps it (same id) when the
refund posts; a refund that fails or is canceled before it posts gets a refund_failure
balance transaction, named by the refund's new `failure_balance_transaction_id`. A refund
still waiting for the acquirer when this revision runs has a hold but no balance transaction:
it gets one here, as the ledger writes it now (created when the hold was, available at once,
no reference until the acquirer refunds), and its refund row names it. The balance
transactions then add up to the balance again, whose available part already left those
holds out.

Only open holds are read (a handful: a refund waits for the acquirer for seconds, or until
the completer resumes it), through the partial index of open pending transactions, and the
refund rows they name are updated, in the migration's transaction. Processes of the earlier
version should be stopped first (README): one of them would resolve such a refund the earlier
way, writing a second balance transaction for it, which 0040's unique index (built before any
row is written here) refuses. A refund such a process finished while this ran already has its
row: none is written for it here.

The downgrade removes the rows written for holds still open, as the earlier version expects;
it refuses, naming the refunds, if a payout already includes one of them.

Revision ID: 0041_pending_refund_entries
Revises: 0040_one_refund_entry
"""

import sqlalchemy as sa
from alembic import op

from remit.core.ids import new_id
from remit.storage.migration_stops import MigrationStoppedError

revision = "0041_pending_refund_entries"
down_revision = "0040_one_refund_entry"
branch_labels = None
depends_on = None

# The open refund holds without a balance transaction, with what theirs must show: the
# refund's amount is minus what the hold owes the acquirer (its acquirer_clearing leg), its net
# what it takes from available. `\\:` keeps SQLAlchemy's text() from reading ":refund_hold" as a
# bound parameter.
_HOLDS_TO_SHOW = """
SELECT lt.account_id, lt.id, lt.created_at, lt.metadata->>'refund' AS refund_id,
    lt.metadata->>'charge' AS charge_id, la.currency,
    sum(lp.amount_minor) FILTER (WHERE la.name = 'acquirer_clearing') AS owed,
    sum(lp.amount_minor) FILTER (WHERE la.name = 'available') AS net
FROM ledger_transactions AS lt
JOIN ledger_postings AS lp ON lp.account_id = lt.account_id AND lp.transaction_id = lt.id
JOIN ledger_accounts AS la ON la.id = lp.ledger_account_id
WHERE lt.pending_status = 'open' AND lt.kind = 'pending' AND lt.id LIKE '%\\:refund_hold'
  AND NOT EXISTS (
      SELECT 1 FROM balance_transactions AS bt
      WHERE bt.account_id = lt.account_id AND bt.ledger_transaction_id = lt.id
  )
GROUP BY lt.account_id, lt.id, lt.created_at, lt.metadata, la.currency
"""

_SHOW = """
INSERT INTO balance_transactions (
    id, account_id, ledger_transaction_id, type, reporting_category, amount, fee, net,
    currency, status, available_on, created_at, fee_details, source_id, charge_id
) VALUES (
    :id, :account_id, :hold_id, 'refund', 'refund', :amount, :fee, :net,
    :currency, 'available', :created_at, :created_at, CAST(:fee_details AS jsonb), :refund_id,
    :charge_id
)
ON CONFLICT (account_id, source_id) WHERE type = 'refund' DO NOTHING
RETURNING id
"""

_NAME_IT = """
UPDATE refunds SET balance_transaction_id = :id
WHERE account_id = :account_id AND id = :refund_id AND balance_transaction_id IS NULL
"""

# What upgrade wrote for the holds still open: the earlier version writes a refund's balance
# transaction when it posts, and would write a second one.
_UNSHOW = """
WITH unshown AS (
    DELETE FROM balance_transactions AS bt
    USING ledger_transactions AS lt
    WHERE lt.account_id = bt.account_id AND lt.id = bt.ledger_transaction_id
      AND lt.pending_status = 'open' AND lt.kind = 'pending' AND lt.id LIKE '%\\:refund_hold'
    RETURNING bt.account_id, bt.id, bt.source_id
)
UPDATE refunds AS r SET balance_transaction_id = NULL
FROM unshown
WHERE r.account_id = unshown.account_id AND r.id = unshown.source_id
  AND r.balance_transaction_id = unshown.id
"""


def upgrade() -> None:
    connection = op.get_bind()
    for hold in connection.execute(sa.text(_HOLDS_TO_SHOW)).mappings().all():
        if hold["refund_id"] is None or hold["owed"] is None or hold["net"] is None:
            continue  # not a hold the ledger placed for a refund
        amount, net = -int(hold["owed"]), int(hold["net"])
        values = {
            "id": new_id("txn"),
            "account_id": hold["account_id"],
            "hold_id": hold["id"],
            "refund_id": hold["refund_id"],
            "charge_id": hold["charge_id"],
            "amount": amount,
            "fee": amount - net,
            "net": net,
            "currency": hold["currency"],
            "created_at": hold["created_at"],
            # Holds placed before this revision never returned a fee.
            "fee_details": "[]",
        }
        # An earlier process that posted the refund meanwhile wrote (and named) its own row.
        if connection.execute(sa.text(_SHOW), values).first() is not None:
            connection.execute(sa.text(_NAME_IT), values)
    # Last: adding the column locks every read and write of refunds until the migration's
    # transaction ends, which then follows at once instead of after the scan of the holds.
    op.add_column(
        "refunds",
        sa.Column("failure_balance_transaction_id", sa.Text, nullable=True),
        if_not_exists=True,
    )


# Rows of open holds a payout already took: deleting them would leave that payout's balance
# transactions no longer adding up to its amount.
_PAID_OUT = """
SELECT bt.source_id, bt.payout_id
FROM balance_transactions AS bt
JOIN ledger_transactions AS lt
    ON lt.account_id = bt.account_id AND lt.id = bt.ledger_transaction_id
WHERE lt.pending_status = 'open' AND lt.kind = 'pending' AND lt.id LIKE '%\\:refund_hold'
  AND bt.payout_id IS NOT NULL
ORDER BY bt.source_id
LIMIT 20
"""


def _refuse_paid_out() -> None:
    found = op.get_bind().execute(sa.text(_PAID_OUT)).all()
    if found:
        named = ", ".join(f"{row.source_id} (in payout {row.payout_id})" for row in found)
        raise MigrationStoppedError(
            "Cannot downgrade below 0041_pending_refund_entries: these refunds, still waiting "
            f"for the acquirer, have balance transactions a payout already includes: {named}. "
            "Removing them would leave those payouts' balance transactions no longer adding up "
            "to their amounts; downgrade once the refunds have succeeded or failed."
        )


def downgrade() -> None:
    _refuse_paid_out()
    op.execute(sa.text(_UNSHOW))
    op.drop_column("refunds", "failure_balance_transaction_id")
