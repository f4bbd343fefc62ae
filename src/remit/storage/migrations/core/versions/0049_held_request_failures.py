"""An unfinished idempotency key records how often the completer tried it and why it failed.

A request the completer cannot finish (the acquirer holds another operation under its reference,
the acquirer is out of reach for long, a bug) was only in the worker's log. These columns let
`remit held-requests` show it: the completer's tries, and the latest failure's time, code and
message, with, for a look-up that found another operation at the acquirer, the reference, the
acquirer's operation id and the names of the fields that differ. Nothing a card holder gave.

Keys stored before this have had no try counted: they start at 0, with no failure, which is what
the completer's next try fills in. No row is rewritten: a column with a constant default, or
none, is added without touching the table's rows, holding the table's lock only for a moment.

The downgrade drops the columns and what they recorded.

Revision ID: 0049_held_request_failures
Revises: 0048_idempotency_key_account
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0049_held_request_failures"
down_revision = "0048_idempotency_key_account"
branch_labels = None
depends_on = None

_TABLE = "idempotency_keys"
_FAILURE_COLUMNS: tuple[sa.Column[object], ...] = (
    sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_failure_code", sa.Text, nullable=True),
    sa.Column("last_failure_message", sa.Text, nullable=True),
    sa.Column("last_failure_reference", sa.Text, nullable=True),
    sa.Column("last_failure_operation", sa.Text, nullable=True),
    sa.Column("last_failure_fields", ARRAY(sa.Text), nullable=True),
)


def upgrade() -> None:
    op.add_column(
        _TABLE,
        sa.Column("completer_attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    for column in _FAILURE_COLUMNS:
        op.add_column(_TABLE, column)


def downgrade() -> None:
    for column in reversed(_FAILURE_COLUMNS):
        op.drop_column(_TABLE, column.name)
    op.drop_column(_TABLE, "completer_attempts")
