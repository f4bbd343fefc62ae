"""Radar keeps a history of its rules and value lists, and each rule its version.

Until this revision nothing recorded who changed a rule or a list, or what it was before, and a
charge's expanded `outcome.rule` showed the rule as it is now, whatever it was when it decided
the charge. `radar_changes` gets a row for every change to a rule, a value list or an item
(what, before and after, when, and the API key it was asked with: its key_ id, never its
secret), written in the transaction of the change. `radar_rules.version` counts the changes of
a rule's action or predicate, and a charge's Radar verdict names the version that decided it
(the verdict has always held the rule's text, which the expanded `outcome.rule` now shows).

The history starts empty: what was changed before this revision was not recorded. Every rule
is at version 1; the constant default fills the new column without rewriting the table.

A core of the earlier version still running after this revision changes rules, lists and
items as before, recording none of it in `radar_changes`, and changes a rule's action or
predicate without counting a version: those changes are missing from the history for good,
and the charges the changed rule decides name the version it had before.

The downgrade drops `radar_changes`, and with it the whole history recorded since this
revision, which is kept nowhere else (copy the table first to keep it), and each rule's
`version`. The charges decided since keep the version their verdict names; upgrading again
starts the history empty and every rule at version 1 once more.

Revision ID: 0057_radar_history
Revises: 0056_unique_list_items
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0057_radar_history"
down_revision = "0056_unique_list_items"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "radar_rules",
        sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1")),
    )
    op.create_table(
        "radar_changes",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("object_type", sa.Text(), nullable=False),
        sa.Column("object_id", sa.Text(), nullable=False),
        sa.Column("value_list_id", sa.Text(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("rule_version", sa.Integer(), nullable=True),
        sa.Column("before", JSONB(), nullable=True),
        sa.Column("after", JSONB(), nullable=True),
        sa.Column("changed_by", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_radar_changes"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_radar_changes_account_id_accounts"
        ),
    )
    op.create_index(
        "ix_radar_changes_account_created", "radar_changes", ["account_id", "created_at", "id"]
    )
    op.create_index(
        "ix_radar_changes_object", "radar_changes", ["account_id", "object_id", "created_at"]
    )
    op.create_index(
        "ix_radar_changes_value_list",
        "radar_changes",
        ["account_id", "value_list_id", "created_at"],
        postgresql_where=sa.text("value_list_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_table("radar_changes")
    op.drop_column("radar_rules", "version")
