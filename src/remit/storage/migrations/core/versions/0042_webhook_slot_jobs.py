"""A webhook delivery's endpoint slot names the job that took it.

A delivery job takes one of its endpoint's concurrency slots in a transaction of its own, then
renders, POSTs and records the attempt in the job's transaction. A run that failed after taking
the slot left it leased; the job's retry found it taken, waited in a new job with a fresh
attempt count, and so never reached its attempt limit: the delivery stayed pending until its
event was purged. The slot now names its job, whose retries take it back. Slots taken before
this revision name none and are freed by their lease, as before.

Revision ID: 0042_webhook_slot_jobs
Revises: 0041_pending_refund_entries
"""

import sqlalchemy as sa
from alembic import op

revision = "0042_webhook_slot_jobs"
down_revision = "0041_pending_refund_entries"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("webhook_inflight", sa.Column("job_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("webhook_inflight", "job_id")
