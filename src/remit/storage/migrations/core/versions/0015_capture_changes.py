"""A capture's metadata and statement descriptors apply only when the capture succeeds.

A capture request may change the intent's metadata and the charge's statement descriptors.
They are now recorded on the charge with the capture request (`requested_capture_changes`,
next to `requested_capture_minor`) and applied in the transaction that records the network's
approval, so a capture the network refuses changes neither. A retry or the completer that
finishes the capture finds them there.

Captures in flight across this revision were started by code that wrote their changes at once:
their charges have none recorded, and finishing them writes nothing more.

Revision ID: 0015_capture_changes
Revises: 0014_vault_token_indexes
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0015_capture_changes"
down_revision = "0014_vault_token_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("charges", sa.Column("requested_capture_changes", JSONB, nullable=True))


def downgrade() -> None:
    op.drop_column("charges", "requested_capture_changes")
