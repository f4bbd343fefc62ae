"""In-flight payouts are found by when they are due.

The payout job claimed the oldest in-flight payouts whether or not any was due, through an
index on their status: with a batch's worth of standard payouts waiting two days in transit,
newer payouts stayed pending, and the waiting ones were locked on every tick. It now claims
only due payouts, soonest first; these partial indexes serve each half of that claim (pending
payouts by creation, in-transit ones by arrival date) and replace the status index.

The indexes are built and dropped without blocking writes to payouts
(`remit.storage.online_index`).

Revision ID: 0027_payouts_due
Revises: 0026_payment_method_spent
"""

import sqlalchemy as sa
from alembic import op

from remit.storage.online_index import create_index_online, drop_index_online

revision = "0027_payouts_due"
down_revision = "0026_payment_method_spent"
branch_labels = None
depends_on = None

_INDEXES = (
    ("ix_payouts_pending_due", "created_at", "status = 'pending'"),
    ("ix_payouts_in_transit_due", "arrival_date", "status = 'in_transit'"),
)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, column, where in _INDEXES:
            create_index_online(name, "payouts", [column], postgresql_where=sa.text(where))
        drop_index_online("ix_payouts_in_flight", "payouts")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_online(
            "ix_payouts_in_flight",
            "payouts",
            ["status"],
            postgresql_where=sa.text("status IN ('pending', 'in_transit')"),
        )
        for name, _, _ in reversed(_INDEXES):
            drop_index_online(name, "payouts")
