"""The audit record of API keys: every key made, and every stop set on one.

Each key made, revoked (now or later), rolled, or whose scheduled stop is brought forward
appends a row in the change's own transaction (`remit.accounts.key_events`): who (the internal
role of the call, the operator it names), why, and the stop before and after. Never the key
or its digest: its masked form. A trigger refuses UPDATE and DELETE of a row, as the ledger's
refuse theirs (0005_ledger): the record is only ever added to.

A new table, empty: the keys made before it have no event (their rows still say when they
were made and when they stop). Earlier processes, still running during the upgrade, change
keys without recording them. The downgrade drops the table, the record with it.

Revision ID: 0086_api_key_events
Revises: 0085_dispute_card_brand
"""

import sqlalchemy as sa
from alembic import op

revision = "0086_api_key_events"
down_revision = "0085_dispute_card_brand"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)

_APPEND_ONLY = """
CREATE FUNCTION api_key_events_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'api key events are append-only (% refused)', TG_OP;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER api_key_events_append_only
    BEFORE UPDATE OR DELETE ON api_key_events
    FOR EACH ROW EXECUTE FUNCTION api_key_events_refuse_change();
"""


def upgrade() -> None:
    op.create_table(
        "api_key_events",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("key_id", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("masked_key", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("operator", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("stops_at", _TZ, nullable=True),
        sa.Column("stops_at_before", _TZ, nullable=True),
        sa.Column("replaced_by", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_key_events"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_api_key_events_account_id_accounts"
        ),
        sa.ForeignKeyConstraint(
            ["key_id"], ["api_keys.id"], name="fk_api_key_events_key_id_api_keys"
        ),
    )
    op.create_index(
        "ix_api_key_events_account_created", "api_key_events", ["account_id", "created_at", "id"]
    )
    op.execute(_APPEND_ONLY)


def downgrade() -> None:
    op.drop_table("api_key_events")
    op.execute("DROP FUNCTION api_key_events_refuse_change()")
