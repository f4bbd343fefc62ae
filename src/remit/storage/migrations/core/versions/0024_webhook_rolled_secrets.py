"""Webhook endpoints keep every rolled secret until its own expiry.

An endpoint had one slot for a rolled secret: rolling twice within a day dropped the first old
secret at once, though its expiry had been given out. `rolled_secrets` holds all of them, each
with its expiry; the old slot's secret moves there if it has not expired.

The old slot's columns stay (unused) so that processes of the earlier version still running
during the upgrade keep working; a later migration drops them. A secret such a process rolls in
the meantime lands in the old slot, which the new version does not read: the secret it replaced
stops verifying at once, as it did before this migration whenever a second roll came within a
day.

Revision ID: 0024_webhook_rolled_secrets
Revises: 0023_webhook_last_success
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0024_webhook_rolled_secrets"
down_revision = "0023_webhook_last_success"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "webhook_endpoints",
        sa.Column("rolled_secrets", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    )
    op.execute(
        # The expiry in ISO 8601, UTC, as `datetime.fromisoformat` reads it.
        """
        UPDATE webhook_endpoints
        SET rolled_secrets = jsonb_build_array(jsonb_build_object(
            'secret', previous_secret,
            'expires_at', to_char(previous_secret_expires_at AT TIME ZONE 'UTC',
                                  'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')))
        WHERE previous_secret IS NOT NULL AND previous_secret_expires_at > now()
        """
    )


def downgrade() -> None:
    # One slot: the rolled secret that stays valid longest keeps it.
    op.execute(
        """
        UPDATE webhook_endpoints AS e
        SET previous_secret = latest.value ->> 'secret',
            previous_secret_expires_at = CAST(latest.value ->> 'expires_at' AS timestamptz)
        FROM webhook_endpoints AS s
        CROSS JOIN LATERAL (
            SELECT value FROM jsonb_array_elements(s.rolled_secrets)
            ORDER BY CAST(value ->> 'expires_at' AS timestamptz) DESC LIMIT 1
        ) AS latest
        WHERE s.id = e.id
        """
    )
    op.drop_column("webhook_endpoints", "rolled_secrets")
