"""The vault database records which key set its cards are sealed under.

A vault started with another key file than its database's (a mistyped REMIT_VAULT_KEY_FILE, a
volume not mounted) made a new key set and served with it: every stored card failed to
decrypt, and new ones were sealed under keys lost once the right file came back. The vault now
records a key check value of its key set here (never a key) and refuses to start with a key
set that does not match it (`remit.vault.key_check`).

A database that already holds cards gets its value on the vault's first start after this
revision, once its key set is seen to unwrap the newest card. Downgrading drops the table: the
earlier code never reads it.

Revision ID: 0004_key_check_values
Revises: 0003_forward_request_digest
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_key_check_values"
down_revision = "0003_forward_request_digest"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "key_check_values",
        sa.Column("key_set", sa.Text, nullable=False),
        sa.Column("check_value", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_set", name="pk_key_check_values"),
    )


def downgrade() -> None:
    op.drop_table("key_check_values")
