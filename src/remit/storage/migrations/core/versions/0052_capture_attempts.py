"""A charge counts the captures asked of the network, so that each is sent under its own
reference (`remit.payments.charges.capture_reference`).

Every capture of a charge was sent under `{charge}_capture`. The network keeps a refused capture
under its reference and refuses the reference for a capture of another amount, so a capture
after a refused one failed for ever. The first capture keeps that reference; later ones add
their number.

The charges made before this may have sent a capture under `{charge}_capture` (one still in
flight is looked up by it, one refused holds it): they count 1, so a capture still in flight
keeps its reference and the next one gets a new one. Charges made from now on count 0, and so
does one an earlier process makes while both run: its first capture goes under
`{charge}_capture` all the same. An earlier process capturing a charge made since leaves its
count at 0 too, having sent `{charge}_capture`: the next capture is given a new reference all
the same, as the charge records the amount of every capture asked for, in every version
(`Charge.captures_asked`). No row is rewritten: the column is added with a constant
default, which PostgreSQL gives the existing rows without touching them, and the default for
new rows is changed afterwards, holding the table's lock only for a moment.

The downgrade drops the column: the earlier version sends every capture under
`{charge}_capture` again, and finds one in flight under it only if it was its charge's first.

Revision ID: 0052_capture_attempts
Revises: 0051_numeric_host_endpoints
"""

import sqlalchemy as sa
from alembic import op

revision = "0052_capture_attempts"
down_revision = "0051_numeric_host_endpoints"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "charges",
        sa.Column("capture_attempts", sa.Integer, nullable=False, server_default=sa.text("1")),
    )
    op.alter_column("charges", "capture_attempts", server_default=sa.text("0"))


def downgrade() -> None:
    op.drop_column("charges", "capture_attempts")
