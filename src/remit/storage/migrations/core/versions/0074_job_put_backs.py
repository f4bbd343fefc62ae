"""A job counts its claims put back apart from its attempts.

A job claimed before it was due is put back (`remit.worker.jobs.reschedule_job`) with its
`attempts` and `max_attempts` both raised by one, so that `attempts` stays what tells one claim
from another. `put_backs` counts those claims, so that what means the runs a job made (its
backoff, the give-up's log, `remit jobs failed`, a handler's "tried before") reads `attempts -
put_backs`: a worker whose clock runs a little ahead could claim and put back a job dozens of
times, and the first real failure after that backed off for an hour instead of 2 seconds.

A column with a constant default: added without rewriting the table. A process of the version
before running beside this schema neither reads nor writes it; its put-backs count as attempts,
as before. The downgrade drops it.

Revision ID: 0074_job_put_backs
Revises: 0073_webhook_give_up_failures
"""

import sqlalchemy as sa
from alembic import op

revision = "0074_job_put_backs"
down_revision = "0073_webhook_give_up_failures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "jobs",
        sa.Column("put_backs", sa.Integer(), nullable=False, server_default=sa.text("0")),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_column("jobs", "put_backs")
