"""Pending 3-D Secure challenges are found by their expiry without reading the ended ones.

The worker ends the challenges nobody answered once they expire (`remit.radar.expired_challenges`),
every minute, soonest expired first. Challenges are never deleted, and nearly all of them have
ended (passed, failed or expired), so without this index each run reads the whole table to find
the few still pending. The partial index holds only the pending ones, in expiry order; a
challenge leaves it when it ends.

Built and dropped without blocking writes (`remit.storage.online_index`).

Revision ID: 0037_pending_challenge_expiry
Revises: 0036_unauthenticated_outcomes
"""

import sqlalchemy as sa
from alembic import op

from remit.storage.online_index import create_index_online, drop_index_online

revision = "0037_pending_challenge_expiry"
down_revision = "0036_unauthenticated_outcomes"
branch_labels = None
depends_on = None

_NAME = "ix_three_d_secure_challenges_pending_expiry"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_online(
            _NAME,
            "three_d_secure_challenges",
            ["expires_at"],
            postgresql_where=sa.text("status = 'pending'"),
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        drop_index_online(_NAME, "three_d_secure_challenges")
