"""Charges and refunds name their balance transaction (`balance_transaction` on the wire).

The payments service picks the txn_ id when a charge is captured or a refund succeeds, stores
it on the charge or refund row, and the ledger writes the balance transaction under that id in
the same database transaction; so the charge and refund objects, and the events that carry
them, show the id from the moment it exists. Rows written before this revision get the id of
the balance transaction the ledger already wrote for them.

Revision ID: 0011_balance_transaction_ids
Revises: 0010_ledger_post
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_balance_transaction_ids"
down_revision = "0010_ledger_post"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("charges", sa.Column("balance_transaction_id", sa.Text(), nullable=True))
    op.add_column("refunds", sa.Column("balance_transaction_id", sa.Text(), nullable=True))
    # `\\:` keeps SQLAlchemy's text() from reading ":capture" as a bound parameter.
    op.execute(
        """
UPDATE charges AS c SET balance_transaction_id = bt.id
FROM balance_transactions AS bt
WHERE bt.account_id = c.account_id AND bt.ledger_transaction_id = c.id || '\\:capture'
"""
    )
    op.execute(
        """
UPDATE refunds AS r SET balance_transaction_id = bt.id
FROM balance_transactions AS bt
WHERE bt.account_id = r.account_id AND bt.ledger_transaction_id = r.id || '\\:refund'
"""
    )


def downgrade() -> None:
    op.drop_column("refunds", "balance_transaction_id")
    op.drop_column("charges", "balance_transaction_id")
