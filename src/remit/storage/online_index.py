"""Building and dropping indexes in migrations without blocking writes.

A plain `CREATE INDEX` holds a lock that queues every insert and update of its table until the
build ends: on a live platform, refused card saves or payments for as long as the table takes
to index. These build `CONCURRENTLY`, which must run outside a transaction, so a migration
calls them inside `op.get_context().autocommit_block()`. A concurrent build that is interrupted
(a crash, a cancelled upgrade) leaves an invalid index behind that `IF NOT EXISTS` would take
for a finished one, so an invalid index of the same name is dropped and built again. The
migrations' lock_timeout (`remit.storage.migration_locks`) lasts only for their transactions, so
it never cuts these builds short while they wait for older transactions to end.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

_INVALID_INDEX = sa.text(
    "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "WHERE c.relname = :name AND c.relnamespace = current_schema()::regnamespace "
    "AND NOT i.indisvalid"
)


def create_index_online(
    name: str, table: str, columns: Sequence[str | sa.TextClause], **options: Any
) -> None:
    """Build the index unless a valid one of that name exists (inside an autocommit block);
    `columns` are names, or expressions (`sa.text`)."""
    if op.get_bind().execute(_INVALID_INDEX, {"name": name}).first() is not None:
        op.drop_index(name, table_name=table, postgresql_concurrently=True)
    op.create_index(
        name, table, list(columns), postgresql_concurrently=True, if_not_exists=True, **options
    )


def drop_index_online(name: str, table: str) -> None:
    """Drop the index if it exists (inside an autocommit block)."""
    op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
