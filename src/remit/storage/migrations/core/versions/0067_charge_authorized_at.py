"""A charge keeps when the network authorized it.

The worker releases an authorization left uncaptured for 7 days, on a job the core schedules
for then. The job's time came from the core's clock and was compared with the worker's, so a
worker whose clock ran ahead released authorizations early, and the merchant's capture on the
sixth day failed. The release now checks the authorization's age against the database's clock
before it voids anything (`remit.payments.authorization_age`), counting from this column.

Charges authorized before this revision have none (null): their age counts from their creation,
which comes before the authorization by at most the 3-D Secure challenge the charge waited on.
No row is rewritten. An earlier process authorizing a charge while both run leaves it null,
with the same effect. The downgrade drops the column: the earlier version releases on the
job's time alone, as before.

Revision ID: 0067_charge_authorized_at
Revises: 0066_jobs_finished
"""

import sqlalchemy as sa
from alembic import op

revision = "0067_charge_authorized_at"
down_revision = "0066_jobs_finished"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("charges", sa.Column("authorized_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("charges", "authorized_at")
