"""The re-wrap reads the cards not deleted by key version and token, a page at a time.

A re-wrap pass after a rotation pages through the cards not deleted whose data key is wrapped
under an older version, in (key version, token) order, each page starting after the last card
of the one before (`SqlVaultRepository.cards_wrapped_below`). The index on the key version
alone could not serve that order nor that starting point: every page read all the cards of the
versions left, deleted ones included, and sorted them. This index holds the cards not deleted
in that order, so a page is a range read of the cards it returns.

It replaces the index on the key version alone: every query of the key version reads the cards
not deleted only (counting those wrapped below or under a version, the newest version in use),
which this one serves as well. Both are built and dropped without blocking card saves
(`remit.storage.online_index`); an upgrade stopped on the way has not recorded 0005 and does
what is left on the next. The downgrade builds the earlier index again before it drops this one.

Revision ID: 0005_cards_live_kek_version
Revises: 0004_key_check_values
"""

import sqlalchemy as sa
from alembic import op

from remit.storage.online_index import create_index_online, drop_index_online

revision = "0005_cards_live_kek_version"
down_revision = "0004_key_check_values"
branch_labels = None
depends_on = None

_TABLE = "cards"
_LIVE_BY_KEK_VERSION = "ix_cards_live_kek_version"
_BY_KEK_VERSION = "ix_cards_kek_version"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_online(
            _LIVE_BY_KEK_VERSION,
            _TABLE,
            ["kek_version", "token"],
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        drop_index_online(_BY_KEK_VERSION, _TABLE)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_online(_BY_KEK_VERSION, _TABLE, ["kek_version"])
        drop_index_online(_LIVE_BY_KEK_VERSION, _TABLE)
