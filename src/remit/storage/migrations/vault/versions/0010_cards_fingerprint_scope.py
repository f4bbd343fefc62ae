"""A card's fingerprint is its account's own: each card records whose it is comparable with.

Fingerprints were a keyed hash of the number under one key for every account: the same card had
the same fingerprint in every account, so merchants sharing an installation could link their
cardholders, and any of them could store a number and read its fingerprint to find it in the
others'. The vault now fingerprints a new card under a key of its account alone
(`remit.vault.crypto.fingerprint`), as Stripe does, and records it in `fingerprint_scope`
(`FingerprintScope`: 1, one key for every account; 2, the account's). The cards already stored
are of scope 1; the background re-seal (`VaultService.reseal_all`) fingerprints each anew from
its sealed number and re-seals it, as its seals bind the fingerprint.

- The column is added with a constant default (no table rewrite), and a CHECK admitting 1 and
  2, added `NOT VALID` and validated in a transaction of its own as vault migration 0007 does.
- The partial index of the cards left to re-seal (`ix_cards_live_to_reseal`) now covers the
  cards of scope 1 too. It is built under another name without blocking card saves, the old
  one dropped, and the new one renamed into its place. An upgrade interrupted anywhere in
  between, run again, ends the same way.

The downgrade puts 0008's index back and drops the column. The earlier vault ignores which
scope a fingerprint is of: the cards already fingerprinted under their account keep those
fingerprints (their seals bind them), and it fingerprints new cards under the one key again.
Shredded cards keep the fingerprint they had: they have no sealed number left to compute
another from.

Revision ID: 0010_cards_fingerprint_scope
Revises: 0009_lost_key_versions
"""

import sqlalchemy as sa
from alembic import op

from remit.storage.online_index import create_index_online, drop_index_online

revision = "0010_cards_fingerprint_scope"
down_revision = "0009_lost_key_versions"
branch_labels = None
depends_on = None

_TABLE = "cards"
# `ck_%(table_name)s_%(constraint_name)s` (remit.storage.schema), as tables.py names it.
_CHECK = "ck_cards_fingerprint_scope"
_INDEX = "ix_cards_live_to_reseal"
# The index with its new condition, until it takes the old one's name.
_BUILDING = "ix_cards_live_to_reseal_next"
_TO_RESEAL = "deleted_at IS NULL AND (seal_format < 3 OR fingerprint_scope < 2)"
_TO_RESEAL_0008 = "deleted_at IS NULL AND seal_format < 3"


def _replace_index(condition: str) -> None:
    """`_INDEX` with `condition` (inside an autocommit block): built beside the old one, which
    is dropped, then renamed into its place."""
    create_index_online(_BUILDING, _TABLE, ["token"], postgresql_where=sa.text(condition))
    drop_index_online(_INDEX, _TABLE)
    op.execute(f"ALTER INDEX {_BUILDING} RENAME TO {_INDEX}")


def upgrade() -> None:
    op.execute(
        f"ALTER TABLE {_TABLE} ADD COLUMN IF NOT EXISTS fingerprint_scope smallint "
        "NOT NULL DEFAULT 1"
    )
    op.execute(
        f"ALTER TABLE {_TABLE} DROP CONSTRAINT IF EXISTS {_CHECK}, "
        f"ADD CONSTRAINT {_CHECK} CHECK (fingerprint_scope IN (1, 2)) NOT VALID"
    )
    with op.get_context().autocommit_block():
        op.execute(f"ALTER TABLE {_TABLE} VALIDATE CONSTRAINT {_CHECK}")
        _replace_index(_TO_RESEAL)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        _replace_index(_TO_RESEAL_0008)
    op.execute(f"ALTER TABLE {_TABLE} DROP COLUMN fingerprint_scope")
