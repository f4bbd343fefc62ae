"""A card's seals may bind its metadata too: seal format 3 (`SealFormat.METADATA_BOUND`).

A card's brand, last4, fingerprint, expiry, funding, country, billing details, mode and
creation time are plain columns, which the vault hands out and a forward sends: a write to the
vault database could swap them between two cards of one account unseen. The vault now seals
new cards bound to a digest of them (`remit.vault.card_metadata`), and re-seals the cards of
formats 1 and 2 (`VaultService.reseal_all`, its background does it by itself).

- The CHECK of vault migration 0007 admits 3. The constraint is dropped and added again,
  `NOT VALID`, in one statement (the brief lock adding it takes, under the migrations' lock
  timeout), then validated in a transaction of its own, which lets reads and writes through
  (see 0007). Every card holds 1 or 2 under 0007's constraint, so validation cannot fail. An
  upgrade interrupted in between adds it again and carries on.
- The partial index of the cards left to re-seal covers formats 1 and 2
  (`ix_cards_live_to_reseal`, `seal_format < 3`), built without blocking card saves; the one
  of 0006 (format 1 only) is dropped after it.

The downgrade puts 0007's constraint and 0006's index back. The earlier vault cannot open a
card of format 3: a downgrade with such a card not deleted stops, naming it (delete the cards
it names, or restore the vault database from before the upgrade). Deleted cards of format 3
hold no seal (their data key is shredded) and are set to 2 first, or the old constraint
would not validate.

Revision ID: 0008_cards_metadata_bound
Revises: 0007_cards_seal_format_check
"""

import sqlalchemy as sa
from alembic import op

from remit.storage.online_index import create_index_online, drop_index_online

revision = "0008_cards_metadata_bound"
down_revision = "0007_cards_seal_format_check"
branch_labels = None
depends_on = None

_TABLE = "cards"
# `ck_%(table_name)s_%(constraint_name)s` (remit.storage.schema), as tables.py names it.
_CHECK = "ck_cards_seal_format"
_NEW_INDEX = "ix_cards_live_to_reseal"
_OLD_INDEX = "ix_cards_live_token_bound"
# How many of the cards stopping a downgrade it names.
_NAMED = 5

_LIVE_METADATA_BOUND = sa.text(
    "SELECT token FROM cards WHERE seal_format = 3 AND deleted_at IS NULL "
    "ORDER BY token LIMIT :limit"
)


class MetadataBoundCardsError(RuntimeError):
    """Cards not deleted are sealed in format 3, which the earlier vault cannot open."""


def _check(condition: str) -> None:
    """The seal format CHECK, with `condition`: replaced, then validated."""
    op.execute(
        f"ALTER TABLE {_TABLE} DROP CONSTRAINT IF EXISTS {_CHECK}, "
        f"ADD CONSTRAINT {_CHECK} CHECK ({condition}) NOT VALID"
    )
    with op.get_context().autocommit_block():
        op.execute(f"ALTER TABLE {_TABLE} VALIDATE CONSTRAINT {_CHECK}")


def upgrade() -> None:
    _check("seal_format IN (1, 2, 3)")
    with op.get_context().autocommit_block():
        create_index_online(
            _NEW_INDEX,
            _TABLE,
            ["token"],
            postgresql_where=sa.text("deleted_at IS NULL AND seal_format < 3"),
        )
        drop_index_online(_OLD_INDEX, _TABLE)


def downgrade() -> None:
    bind = op.get_bind()
    live = list(bind.execute(_LIVE_METADATA_BOUND, {"limit": _NAMED}).scalars())
    if live:
        raise MetadataBoundCardsError(
            "vault cards not deleted are sealed bound to their metadata (seal_format 3), which "
            f"the earlier vault cannot open (first: {live}); delete them, or restore the vault "
            "database from before the upgrade, and downgrade again."
        )
    op.execute("UPDATE cards SET seal_format = 2 WHERE seal_format = 3 AND deleted_at IS NOT NULL")
    _check("seal_format IN (1, 2)")
    with op.get_context().autocommit_block():
        create_index_online(
            _OLD_INDEX,
            _TABLE,
            ["token"],
            postgresql_where=sa.text("deleted_at IS NULL AND seal_format = 1"),
        )
        drop_index_online(_NEW_INDEX, _TABLE)
