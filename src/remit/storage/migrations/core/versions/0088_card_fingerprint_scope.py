"""Payment methods and tokens record whether their card's fingerprint is known to be its
account's own.

The vault fingerprints each card under a key of its account alone since vault migration 0010,
and re-fingerprints the cards it stored before. The core copied a card's fingerprint into each
payment method and token made of it and never asked again: those made before the vault's
re-seal hold the fingerprint every account shared. `fingerprint_scope` says which a row holds
(1: as the vault gave it, which may be the shared one; 2: checked with the vault to be the
account's own). The worker's conversion (`remit.payment_methods.fingerprint_conversion`) asks
the vault about the rows of scope 1 and rewrites them, and the Radar list items and velocity
counters of their old fingerprint, in their account.

- The column is added with a constant default (no table rewrite), and a CHECK admitting 1 and
  2, added `NOT VALID` and validated in a transaction of its own, as vault migration 0010 does.
- A partial index of each table's rows of scope 1, by id, built without blocking writes: the
  conversion walks it, and it empties as the conversion goes.
An upgrade interrupted anywhere in between, run again, ends the same way.

The downgrade drops the indexes and the columns; the fingerprints the conversion rewrote stay
the accounts' own.

Revision ID: 0088_card_fingerprint_scope
Revises: 0087_event_order
"""

import sqlalchemy as sa
from alembic import op

from remit.storage.online_index import create_index_online, drop_index_online

revision = "0088_card_fingerprint_scope"
down_revision = "0087_event_order"
branch_labels = None
depends_on = None

_TABLES = ("payment_methods", "tokens")


def _check(table: str) -> str:
    # `ck_%(table_name)s_%(constraint_name)s` (remit.storage.schema), as tables.py names it.
    return f"ck_{table}_fingerprint_scope"


def _index(table: str) -> str:
    return f"ix_{table}_fingerprint_to_convert"


def upgrade() -> None:
    for table in _TABLES:
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS fingerprint_scope smallint "
            "NOT NULL DEFAULT 1"
        )
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {_check(table)}, "
            f"ADD CONSTRAINT {_check(table)} CHECK (fingerprint_scope IN (1, 2)) NOT VALID"
        )
    with op.get_context().autocommit_block():
        for table in _TABLES:
            op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {_check(table)}")
            create_index_online(
                _index(table), table, ["id"], postgresql_where=sa.text("fingerprint_scope = 1")
            )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for table in _TABLES:
            drop_index_online(_index(table), table)
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} DROP COLUMN fingerprint_scope")
