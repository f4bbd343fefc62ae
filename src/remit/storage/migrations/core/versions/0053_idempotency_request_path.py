"""An idempotency key keeps the URL path of the REST request that first used it.

A key reused on another endpoint was refused naming remit's RPCs ('CreatePayout' vs
'CreateRefund'), which a REST client never called; Stripe names the paths
('/v1/invoices/in_x/pay' vs '/v1/invoices'). The facade now tells the core each request's path,
and the key keeps its first one to name it then.

Keys stored before this have no path: a reuse elsewhere names the new request's path and
"another endpoint" for theirs, until they expire (a day). The column is nullable with no
default, so adding it rewrites no row and holds the table's lock only for a moment. The
downgrade drops it, and with it the paths kept.

Revision ID: 0053_idempotency_request_path
Revises: 0052_capture_attempts
"""

import sqlalchemy as sa
from alembic import op

revision = "0053_idempotency_request_path"
down_revision = "0052_capture_attempts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("request_path", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("idempotency_keys", "request_path")
