"""Reconciliation compares the fee the acquirer withheld with the network fee the ledger booked.

The ledger now books the card network's fee with each capture (the `network_fees` ledger
account, created on first use like every ledger account: no schema change for it). A stored
reconciliation keeps what it compared: each row the ledger's fee beside the acquirer's, and
the day its count of fee mismatches, a status of its own so that `amount_mismatch` keeps its
meaning.

Existing data: captures booked before this change have no network-fee legs and are not
backfilled (their ledger transactions are hash-chained history, and what the acquirer withheld
from each is known only from its settlement rows); reconciliation does not compare their fee.
Reconciliations stored before have no fee mismatches (0) and no ledger fee (NULL) in their
rows. Both columns are added without rewriting either table (a NULL column, and a constant
default).

Revision ID: 0031_reconcile_network_fees
Revises: 0030_acquirer_reference
"""

import sqlalchemy as sa
from alembic import op

revision = "0031_reconcile_network_fees"
down_revision = "0030_acquirer_reference"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "reconciliations",
        sa.Column("fee_mismatch_count", sa.Integer, nullable=False, server_default="0"),
    )
    op.add_column("reconciliation_rows", sa.Column("ledger_fee", sa.BigInteger, nullable=True))


def downgrade() -> None:
    op.drop_column("reconciliation_rows", "ledger_fee")
    op.drop_column("reconciliations", "fee_mismatch_count")
