"""Events keep the account's API version of the moment they were recorded.

An event's data is rendered once, for the account, and never changes afterwards: a webhook
endpoint without its own `api_version`, `GET /v1/events` and `remit listen` render it at the
version the account was pinned to when the event happened, even after the account moves to a
newer one. Events recorded before this revision have none, and keep being rendered at the
account's current version.

Revision ID: 0012_event_api_version
Revises: 0011_balance_transaction_ids
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_event_api_version"
down_revision = "0011_balance_transaction_ids"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("api_version", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("events", "api_version")
