"""Cards not yet deleted are found oldest first.

The worker's sweep of unreferenced cards pages through the vault's cards stored before a
cutoff, in (created_at, token) order; this index makes each page a range read instead of a
scan and sort of the whole table. Deleted cards are left out: the sweep never asks for them.
It is built without blocking card saves (`remit.storage.online_index`).

Revision ID: 0002_cards_live_created
Revises: 0001_vault
"""

import sqlalchemy as sa
from alembic import op

from remit.storage.online_index import create_index_online, drop_index_online

revision = "0002_cards_live_created"
down_revision = "0001_vault"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_online(
            "ix_cards_live_created",
            "cards",
            ["created_at", "token"],
            postgresql_where=sa.text("deleted_at IS NULL"),
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        drop_index_online("ix_cards_live_created", "cards")
