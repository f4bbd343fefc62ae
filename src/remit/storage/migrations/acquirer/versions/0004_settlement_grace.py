"""The acquirer records its settlement grace, so that `remit settlement-report` waits as long.

A day's settlement report is whole only a grace after midnight, once every transaction that may
have stamped a time of the day has ended; the grace follows from the acquirer's statement
timeout and pool wait (`remit.acquirer.settlement_clock.settlement_grace`). `remit
settlement-report` reads the acquirer's database itself, from a shell whose settings may not be
the acquirer's: with a shorter statement timeout there, it called a day whole too early. Each
acquirer process now records its grace here when it starts, one row, and the command waits the
longer of its own and the recorded one.

Until an acquirer of this version has started, the table is empty and the command waits its
own grace, as before.

Revision ID: 0004_settlement_grace
Revises: 0003_settlement_snapshots
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_settlement_grace"
down_revision = "0003_settlement_snapshots"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "settlement_grace",
        sa.Column("id", sa.Boolean, primary_key=True, server_default=sa.true()),
        sa.Column("grace_ms", sa.BigInteger, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_settlement_grace"),
        sa.CheckConstraint("id", name="ck_settlement_grace_one_row"),
        sa.CheckConstraint("grace_ms >= 0", name="ck_settlement_grace_not_negative"),
    )


def downgrade() -> None:
    op.drop_table("settlement_grace")
