"""Each card records what its seals are bound to: its token alone, or its account and token.

Cards were sealed with their vault token as associated data, not the account that owns them: a
row given to another account by a write to the vault database still opened, and was forwarded
for that account. The vault now binds both (`remit.vault.crypto.SealFormat.ACCOUNT_BOUND`, 2)
and records the format of each card here; the cards already stored keep format 1 (the token
alone) until the vault re-seals them under a fresh data key (`VaultService.reseal_all`), which
its background does by itself.

A column with a constant default changes only the catalog (no rewrite, no scan); the brief lock
it needs is taken under the migrations' lock timeout. The default, 1, is also right for the
cards a vault of the earlier version still running writes during an upgrade. The partial index
of the cards left to re-seal is built without blocking card saves; it empties as they are
re-sealed. Downgrading drops both: the earlier code cannot open a card of format 2, so downgrade
only a vault database whose cards are all of format 1 (none stored or re-sealed since).

Revision ID: 0006_cards_seal_format
Revises: 0005_cards_live_kek_version
"""

import sqlalchemy as sa
from alembic import op

from remit.storage.online_index import create_index_online, drop_index_online

revision = "0006_cards_seal_format"
down_revision = "0005_cards_live_kek_version"
branch_labels = None
depends_on = None

_TABLE = "cards"
_INDEX = "ix_cards_live_token_bound"


def upgrade() -> None:
    # if_not_exists: when the index build below is stopped, the column is already committed
    # (autocommit_block) but 0006 is not recorded, and the next run starts here again.
    op.add_column(
        _TABLE,
        sa.Column("seal_format", sa.SmallInteger, nullable=False, server_default="1"),
        if_not_exists=True,
    )
    with op.get_context().autocommit_block():
        create_index_online(
            _INDEX,
            _TABLE,
            ["token"],
            postgresql_where=sa.text("deleted_at IS NULL AND seal_format = 1"),
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        drop_index_online(_INDEX, _TABLE)
    op.drop_column(_TABLE, "seal_format")
