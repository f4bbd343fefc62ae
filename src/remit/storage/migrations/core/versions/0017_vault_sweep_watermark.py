"""The sweep of unreferenced vault cards remembers how far it has got.

A card the sweep found referenced stays referenced, and one it found unreferenced is deleted,
so a run starts after the last card the previous runs finished with instead of listing every
old card again. Until the first run records it there is no row, and the sweep starts from the
oldest card.

Revision ID: 0017_vault_sweep_watermark
Revises: 0016_customer_default_pm
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_vault_sweep_watermark"
down_revision = "0016_customer_default_pm"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vault_sweep_watermarks",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("card_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("vault_token", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_vault_sweep_watermarks"),
    )


def downgrade() -> None:
    op.drop_table("vault_sweep_watermarks")
