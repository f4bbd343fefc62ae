"""Cards not yet deleted are found oldest first.

The worker's sweep of unreferenced cards pages through the vault's cards stored before a
cutoff, in (created_at, token) order; this index makes each page a range read instead of a
scan and sort of the whole table. Deleted cards are left out: the sweep never asks for them.

Revision ID: 0002_cards_live_created
Revises: 0001_vault
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_cards_live_created"
down_revision = "0001_vault"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_cards_live_created",
        "cards",
        ["created_at", "token"],
        postgresql_where=sa.text("deleted_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_cards_live_created", table_name="cards")
