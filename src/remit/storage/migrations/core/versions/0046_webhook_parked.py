"""Webhook deliveries that found every slot of their endpoint taken wait parked, with no job.

Such a delivery used to wait in a new job staged half a second later, and again and again
until a slot was free: with 16 slots busy and a thousand deliveries waiting, two thousand job
cycles a second on one endpoint's row. It now parks here, and the attempt that lets a slot go
wakes the oldest parked delivery of its endpoint, staging its job in the same transaction; a
periodic sweep wakes those of endpoints whose slots freed themselves (a worker died holding
one).

During an upgrade a worker of the earlier version lets slots go without waking anyone: the
deliveries parked behind its slots are woken by the sweep of a worker of this version, a few
seconds later than they would be, never lost.

The earlier version has no such sweep, and a parked delivery has no job: the downgrade stages
a delivery job for each parked one before dropping the table, so none of them is lost. A woken
delivery that finds its endpoint busy waits, as the earlier version's deliveries do.

Revision ID: 0046_webhook_parked
Revises: 0045_review_closing_reason
"""

import sqlalchemy as sa
from alembic import op

revision = "0046_webhook_parked"
down_revision = "0045_review_closing_reason"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_parked",
        sa.Column("delivery_id", sa.BigInteger, nullable=False),
        sa.Column("endpoint_id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("due_at", _TS, nullable=False),
        sa.Column("parked_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("delivery_id", name="pk_webhook_parked"),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name="fk_webhook_parked_delivery_id_webhook_deliveries",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_webhook_parked_endpoint_id_due_at",
        "webhook_parked",
        ["endpoint_id", "due_at", "delivery_id"],
    )


# A job per parked delivery, as the earlier version's worker runs a delivery attempt
# (`webhooks.deliver`, the delivery and its attempt number), due now, with the NOTIFY on the
# jobs' channel (`remit_jobs`) that wakes the workers once this commits. Written out here, not
# imported: this is what the earlier version reads, whatever later versions call them.
_WAKE_ALL_PARKED = """
WITH job AS (
    INSERT INTO jobs (kind, payload, account_id, run_at, max_attempts, created_at)
    SELECT 'webhooks.deliver',
           jsonb_build_object('delivery_id', parked.delivery_id, 'attempt', parked.attempt),
           parked.account_id, now(), parked.max_attempts, now()
    FROM webhook_parked AS parked
    ORDER BY parked.due_at, parked.delivery_id
    RETURNING kind
)
SELECT pg_notify('remit_jobs', kind) FROM job LIMIT 1
"""


def downgrade() -> None:
    op.execute(sa.text(_WAKE_ALL_PARKED))
    op.drop_table("webhook_parked")
