"""The rest of the ledger's history refuses TRUNCATE too.

0064_ledger_outcomes_forward made the journal's own tables refuse TRUNCATE (a statement
trigger, since TRUNCATE fires no row trigger). The history the ledger keeps beside the journal
could still be emptied by one statement, with no error and nothing left to show it happened:

- `balance_transactions`: what Stripe's balance shows, one row per money movement, which
  `remit ledger verify` checks against the ledger's balances;
- `ledger_events`: the outbox of `balance.available` and `payout.*` events, rows only ever
  stamped as handed over;
- `payouts`: each payout, its status only moving forward;
- `reconciliations` and `reconciliation_rows`: every stored reconciliation run and what it
  found, earlier runs only ever marked as superseded.

They now refuse it as the journal does (the same trigger function, `ledger_refuse_truncate`),
including when a TRUNCATE of another table cascades to them. Not `balance_release_failures`:
an operator deletes its rows to have the release job try again.

As in 0064, this protects the history from remit's own code and a mistaken statement, not from
a superuser. Nothing is rewritten. The downgrade drops the triggers.

Revision ID: 0070_ledger_history_no_truncate
Revises: 0069_radar_zoned_addresses
"""

from alembic import op

revision = "0070_ledger_history_no_truncate"
down_revision = "0069_radar_zoned_addresses"
branch_labels = None
depends_on = None

HISTORY_TABLES = (
    "balance_transactions",
    "ledger_events",
    "payouts",
    "reconciliations",
    "reconciliation_rows",
)


def upgrade() -> None:
    # Each trigger takes SHARE ROW EXCLUSIVE on its table, one after another, while a posting
    # holds some of these tables and waits for the next: as in 0064, wait first for every
    # ledger writer (each touches the chain heads first) so no posting is half-way when the
    # triggers are made. A deadlock left anyway is rolled back and the migration run again.
    op.execute("LOCK TABLE ledger_chains IN EXCLUSIVE MODE")
    for table in HISTORY_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_truncate()"
        )


def downgrade() -> None:
    for table in HISTORY_TABLES:
        op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
