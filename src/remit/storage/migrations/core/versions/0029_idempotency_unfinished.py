"""Unfinished idempotency keys are found without reading the finished ones.

The completer claims, every few seconds in every worker, the unfinished keys nobody has worked on
for a lease, oldest try first. It once looked only at keys of the last 24 hours, through the
creation index, and read every finished key of that day to find the few that were not; it now
looks at every unfinished key however old (one left past a day may hold money taken at the
network), which without this index means reading the whole table, up to its 72 hours of keys,
on each pass. The partial index holds only the unfinished keys, in the order the completer takes
them; a key leaves it when its request finishes.

Built and dropped without blocking writes (`remit.storage.online_index`).

Revision ID: 0029_idempotency_unfinished
Revises: 0028_refund_customer_and_method
"""

import sqlalchemy as sa
from alembic import op

from remit.storage.online_index import create_index_online, drop_index_online

revision = "0029_idempotency_unfinished"
down_revision = "0028_refund_customer_and_method"
branch_labels = None
depends_on = None

_NAME = "ix_idempotency_keys_unfinished"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_online(
            _NAME,
            "idempotency_keys",
            ["last_run_at"],
            postgresql_where=sa.text("recovery_point <> 'finished'"),
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        drop_index_online(_NAME, "idempotency_keys")
