"""A card's streak of declines in a row lapses a day after its last decline.

Radar's `declined_charges_in_a_row_per_card_number` was reset only by an approval, and a rule
blocking on it then refused the card for good (remit.radar.velocity). The counter row records
when the streak's last decline was counted, so that the streak can be forgotten 24 hours later.

Nullable and not filled in: adding it rewrites nothing. A row written before it holds NULL, and
the end of the hour its rings last moved to stands in for the time of its last decline (the
latest it can have been), so an old streak lapses no sooner than it should.

Revision ID: 0044_decline_streak_lapse
Revises: 0043_canonical_list_ips
"""

import sqlalchemy as sa
from alembic import op

revision = "0044_decline_streak_lapse"
down_revision = "0043_canonical_list_ips"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "radar_counters",
        sa.Column("last_declined_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("radar_counters", "last_declined_at")
