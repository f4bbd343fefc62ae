"""Operations record what they released of their authorization back to the cardholder.

A final capture of less than was authorized releases the rest, and a void releases what is
still capturable: the core released it in its own records and ledger, but the acquirer's
operations recorded only the amount captured, so neither its records nor its settlement report
showed the remainder going back to the cardholder. Each operation now records the amount it
released (`released_minor`), in the same transaction that closes or voids the authorization;
a capture's settlement row carries it, and reconciliation compares it with what the ledger
released.

The authorization's own released amount is not stored: it is derived (its amount less what
was captured, once it is closed or voided), so it cannot disagree with the amounts it is made
of.

Existing rows are backfilled, as every amount is derivable from what was recorded:
- an approved void released its own amount (`amount_minor` has always been what was still
  capturable when it voided);
- a closed authorization with less captured than authorized was closed by its last approved
  capture (a capture that keeps the authorization open never closes it with a remainder, and
  nothing captures a closed one), which released authorized - captured.
Everything else released nothing. The column has a constant default, so adding it rewrites no
row; the backfill updates only the rows that released something. An acquirer of the earlier
version still running after this ran records 0 for the releases it makes: stop it before
upgrading. A capture of less than was authorized that it makes is recorded, but its settlement
row says it released nothing, and reconciliation shows the difference from the ledger's
release. And if the core did not learn that capture's outcome, it settles it by looking its
reference up; an acquirer of this version reports the 0 recorded, and the core compares what a
capture released (`remit.payments.lookup_expectations`): it refuses the record and applies
nothing, and the request stays held at its recovery point (`remit held-requests list`), every
retry refused alike, until an operator sets the operation's `released_minor` as the backfill
below would.

Revision ID: 0005_released_remainders
Revises: 0004_settlement_grace
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_released_remainders"
down_revision = "0004_settlement_grace"
branch_labels = None
depends_on = None

# The capture that closed each authorization captured with a remainder released.
_BACKFILL_CAPTURES = """
UPDATE operations AS o
SET released_minor = a.authorized_minor - a.captured_minor
FROM authorizations AS a
WHERE a.state = 'closed'
  AND a.captured_minor < a.authorized_minor
  AND o.released_minor = 0
  AND o.id = (
    SELECT last.id FROM operations AS last
    WHERE last.authorization_id = a.id AND last.kind = 'capture' AND last.approved
    ORDER BY last.created_at DESC, last.id DESC
    LIMIT 1
  )
"""

_BACKFILL_VOIDS = """
UPDATE operations
SET released_minor = amount_minor
WHERE kind = 'void' AND approved AND released_minor = 0 AND amount_minor > 0
"""


def upgrade() -> None:
    op.add_column(
        "operations",
        sa.Column("released_minor", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    )
    op.create_check_constraint(
        "ck_operations_released_not_negative", "operations", "released_minor >= 0"
    )
    op.execute(_BACKFILL_CAPTURES)
    op.execute(_BACKFILL_VOIDS)


def downgrade() -> None:
    op.drop_constraint("ck_operations_released_not_negative", "operations", type_="check")
    op.drop_column("operations", "released_minor")
