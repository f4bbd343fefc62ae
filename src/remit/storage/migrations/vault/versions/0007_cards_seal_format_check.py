"""A card's seal format is one the vault knows: 1 (token-bound) or 2 (account-bound).

Any other value can only have been written by hand. The vault refuses such a card as tampered
(`remit.vault.crypto.SealFormat.UNRECOGNIZED`); this constraint keeps one from being written at
all.

A CHECK added plainly reads every card under the ACCESS EXCLUSIVE lock that adding it takes:
every read and save of a card, forwards included, waits for the whole scan. So in two steps:
- the constraint is added `NOT VALID`: from then on every card written is checked, without
  reading the table, and its commit ends the brief lock adding it takes (taken under the
  migrations' lock timeout);
- `VALIDATE CONSTRAINT`, in a transaction of its own, reads the cards holding only SHARE UPDATE
  EXCLUSIVE, which lets reads and writes through (it waits only for a VACUUM of the table).
An upgrade interrupted after the first step finds the constraint there and carries on.

A card already holding another value is not changed: it is evidence of a write to the vault
database, for an operator to look into, not something to tidy away. Validation then fails and
the upgrade with it, naming such cards; the constraint stays, NOT VALID, checking new writes.
Once each is set back to the format it was sealed under (1 or 2: a wrong one is refused as
tampered, and gives nothing away), the upgrade carries on. (Deleting such a card through the
vault is not enough: a shredded row keeps its format.)

The downgrade drops the constraint.

Revision ID: 0007_cards_seal_format_check
Revises: 0006_cards_seal_format
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_cards_seal_format_check"
down_revision = "0006_cards_seal_format"
branch_labels = None
depends_on = None

_TABLE = "cards"
# `ck_%(table_name)s_%(constraint_name)s` (remit.storage.schema), as tables.py names it.
_NAME = "ck_cards_seal_format"
_CONDITION = "seal_format IN (1, 2)"
# How many of the cards holding another value the failed upgrade names.
_NAMED = 5

_EXISTS = sa.text(
    "SELECT 1 FROM pg_constraint WHERE conname = :name AND conrelid = CAST(:table AS regclass)"
)
_UNKNOWN_FORMATS = sa.text(
    "SELECT token FROM cards WHERE NOT (seal_format IN (1, 2)) ORDER BY token LIMIT :limit"
)


class UnknownSealFormatError(RuntimeError):
    """Cards hold a seal format the vault does not know: the constraint cannot be validated."""


def upgrade() -> None:
    bind = op.get_bind()
    if bind.execute(_EXISTS, {"name": _NAME, "table": _TABLE}).first() is None:
        op.create_check_constraint(_NAME, _TABLE, _CONDITION, postgresql_not_valid=True)
    with op.get_context().autocommit_block():
        # Read after the constraint is committed: no card with another value can appear since.
        unknown = list(bind.execute(_UNKNOWN_FORMATS, {"limit": _NAMED}).scalars())
        if unknown:
            raise UnknownSealFormatError(
                "vault cards hold a seal_format other than 1 or 2, which only a write to the "
                f"vault database outside the vault can have put there (first: {unknown}); the "
                "vault refuses them as tampered. Look into how, then set each back to the "
                "format it was sealed under (1 or 2), and upgrade again."
            )
        op.execute(f"ALTER TABLE {_TABLE} VALIDATE CONSTRAINT {_NAME}")


def downgrade() -> None:
    op.execute(f"ALTER TABLE {_TABLE} DROP CONSTRAINT IF EXISTS {_NAME}")
