"""Authorizations keep what a later off-session payment citing them is checked against.

An off-session payment (the merchant charging a saved card while the cardholder is away) cites
the network transaction id of the payment that set the card up for it. The issuer behind test
card 4000002500003155 then waives authentication when that setup was authenticated, by the same
merchant, for the same card. Authorizations now keep their network transaction id, whether the
cardholder passed 3-D Secure, and whether the cardholder agreed to off-session payments with
it; setups are found by their network transaction id through a partial index.

Authorizations recorded before this revision have no network transaction id and count as
neither authenticated nor setups: an off-session payment citing one is treated as citing none.
The columns are added with constant defaults (no table rewrite); the index is built without
blocking writes (`remit.storage.online_index`).

Revision ID: 0002_off_session_setups
Revises: 0001_acquirer
"""

import sqlalchemy as sa
from alembic import op

from remit.storage.online_index import create_index_online, drop_index_online

revision = "0002_off_session_setups"
down_revision = "0001_acquirer"
branch_labels = None
depends_on = None

_INDEX = "ix_authorizations_setup_network_transaction_id"


def upgrade() -> None:
    # if_not_exists: when the index build below is stopped, the columns are already committed
    # (autocommit_block), and the next run starts here again.
    op.add_column(
        "authorizations",
        sa.Column("network_transaction_id", sa.Text, nullable=True),
        if_not_exists=True,
    )
    op.add_column(
        "authorizations",
        sa.Column(
            "three_d_secure_authenticated", sa.Boolean, nullable=False, server_default=sa.false()
        ),
        if_not_exists=True,
    )
    op.add_column(
        "authorizations",
        sa.Column("setup_off_session", sa.Boolean, nullable=False, server_default=sa.false()),
        if_not_exists=True,
    )
    with op.get_context().autocommit_block():
        create_index_online(
            _INDEX,
            "authorizations",
            ["network_transaction_id"],
            postgresql_where=sa.text("setup_off_session"),
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        drop_index_online(_INDEX, "authorizations")
    op.drop_column("authorizations", "setup_off_session")
    op.drop_column("authorizations", "three_d_secure_authenticated")
    op.drop_column("authorizations", "network_transaction_id")
