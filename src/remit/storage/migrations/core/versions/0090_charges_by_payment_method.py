"""Charges are found by their payment method.

The worker's conversion of card fingerprints to each account's own
(`remit.payment_methods.fingerprint_conversion`) rewrites the fingerprint the charges of each
payment method it converts show (`charges.card`), in the payment method's transaction: an index
of charges by payment method keeps that to the charges of the batch's payment methods, instead
of a scan of every charge of the account for each batch.

Built `CONCURRENTLY`, so charges are written throughout; an upgrade interrupted during the build
drops the invalid index it left and builds it again. The downgrade drops it the same way.

Revision ID: 0090_charges_by_payment_method
Revises: 0089_isk_amounts_in_hundredths
"""

from alembic import op

from remit.storage.online_index import create_index_online, drop_index_online

revision = "0090_charges_by_payment_method"
down_revision = "0089_isk_amounts_in_hundredths"
branch_labels = None
depends_on = None

_INDEX = "ix_charges_payment_method"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_online(_INDEX, "charges", ["payment_method_id"])


def downgrade() -> None:
    with op.get_context().autocommit_block():
        drop_index_online(_INDEX, "charges")
