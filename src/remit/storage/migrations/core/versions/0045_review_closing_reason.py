"""A review being closed records how, before its payment is refunded or canceled.

Closing a review by refunding or canceling its payment reaches the acquirer, so it cannot be one
transaction: an approval committed between the refund and the close won, and the review said
approved of a refunded payment (remit.radar.reviewing). The close now records its reason on the
locked review first, and an approval is refused while it is there.

Nullable and not filled in: adding it rewrites nothing, and no review is being closed by this
version yet.

Revision ID: 0045_review_closing_reason
Revises: 0044_decline_streak_lapse
"""

import sqlalchemy as sa
from alembic import op

revision = "0045_review_closing_reason"
down_revision = "0044_decline_streak_lapse"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("radar_reviews", sa.Column("closing_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("radar_reviews", "closing_reason")
