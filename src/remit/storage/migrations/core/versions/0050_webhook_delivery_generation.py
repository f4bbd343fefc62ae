"""Webhook deliveries count how many times they were started over, and their jobs say which.

A redelivery (or a resend racing a new delivery) starts a failed delivery over: attempt 1 next,
its attempts counted from 0 again. A job of the delivery before that can still exist: one
retrying a run that failed, or a parked delivery's. Such a job matched the delivery started
over by its attempt number alone, so an attempt-1 job failing for good failed the delivery a
redelivery had just started, and its own job then found nothing left to do. A delivery's
`generation` now counts its starts over; a job carries the generation it was made for, and
acts only for it (`remit.webhooks.delivery`). A parked delivery keeps the generation of the
job that parked it, to hand to the job that wakes it.

Existing deliveries are at generation 0. Jobs staged before this revision, and by processes
of the earlier version still running during the upgrade, carry none; nor do deliveries those
processes park (the column is left NULL). A job with none is matched by its attempt number
alone, as before, so none of them is left without a job that acts for it. The earlier version
reads neither column and ignores the payload key.

Adding a column with a constant default (or none) rewrites no table.

Revision ID: 0050_webhook_delivery_generation
Revises: 0049_held_request_failures
"""

import sqlalchemy as sa
from alembic import op

revision = "0050_webhook_delivery_generation"
down_revision = "0049_held_request_failures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "webhook_deliveries",
        sa.Column("generation", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    op.add_column("webhook_parked", sa.Column("generation", sa.Integer, nullable=True))


def downgrade() -> None:
    # Jobs waiting to run forget the generation they were made for, as the deliveries do: after
    # an upgrade again every delivery is at generation 0, and a job saying 1 or more would
    # never be its delivery's current one (the delivery would stay pending with no job that
    # acts for it). Without one it is matched by its attempt alone, as the earlier version
    # matches every job. A job being run is pending too (`remit.worker.jobs`).
    op.execute(
        "UPDATE jobs SET payload = payload - 'generation'"
        " WHERE kind = 'webhooks.deliver' AND status = 'pending' AND payload ? 'generation'"
    )
    op.drop_column("webhook_parked", "generation")
    op.drop_column("webhook_deliveries", "generation")
