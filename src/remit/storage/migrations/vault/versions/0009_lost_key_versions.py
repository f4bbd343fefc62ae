"""The vault records the key versions an operator declares lost for good.

A card whose data key is wrapped under a key version missing from the key ring is refused
(`vault_key_missing`), and the core holds its payment attempt at `attempt_created` until the
version is back: it may be (a vault process whose key file lags a rotation). When it never will
be (removed too early, and no copy of the key file holds it), `remit vault
declare-key-version-lost` says so here, with who and when; the vault then refuses such cards as
it refuses cards under a retired version (`vault_key_retired`), and the core ends those
attempts with what the network holds.

A new table only: nothing existing changes, and an earlier vault ignores it. Downgrading drops
it, and with it the declarations: cards under those versions are held again, not failed.

Revision ID: 0009_lost_key_versions
Revises: 0008_cards_metadata_bound
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_lost_key_versions"
down_revision = "0008_cards_metadata_bound"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lost_key_versions",
        sa.Column("key_ring", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("declared_by", sa.Text, nullable=False),
        sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_ring", "version", name="pk_lost_key_versions"),
    )


def downgrade() -> None:
    op.drop_table("lost_key_versions")
