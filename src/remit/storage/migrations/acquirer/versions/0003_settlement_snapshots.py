"""Operations record the transaction that wrote them, so that a settlement report read a page
at a time is one snapshot of the day.

Each page of the report was its own read. An operation settles at the time its transaction
takes, but is seen only once that transaction commits: one that committed after the first
page, with a settlement time before the last row already returned, was on no page, while rows
settled later still came on later pages; the report matched the day at no moment. The first
page now takes a snapshot (`pg_current_snapshot()`), its page token carries it, and every page
returns only the operations whose writing transaction (`recorded_xid`, the 64-bit id
`pg_current_xact_id()` gives) that snapshot sees as committed: what had committed when the
report began, each row once. PostgreSQL 13 or later.

Operations written before this revision have no `recorded_xid`: they committed before any
snapshot taken since, and every report includes them. The column is added without a default,
then given one, so the table is not rewritten and only new rows get a value. An acquirer of the
earlier version still running writes rows through the default too.

A database restored from a logical dump (`pg_dump`) into another cluster keeps the ids its rows
were written under there, which that cluster has not reached: a report counts those rows as
committed before it, as they were. The page tokens of reports begun before the restore are of
no use after it: read such a report again from its first page.

Revision ID: 0003_settlement_snapshots
Revises: 0002_off_session_setups
"""

from alembic import op

revision = "0003_settlement_snapshots"
down_revision = "0002_off_session_setups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Two statements: a volatile default given with the column would rewrite the table and
    # stamp every existing row with this migration's transaction.
    op.execute("ALTER TABLE operations ADD COLUMN recorded_xid xid8")
    op.execute("ALTER TABLE operations ALTER COLUMN recorded_xid SET DEFAULT pg_current_xact_id()")


def downgrade() -> None:
    op.drop_column("operations", "recorded_xid")
