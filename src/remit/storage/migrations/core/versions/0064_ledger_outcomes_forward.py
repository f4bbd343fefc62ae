"""A ledger transaction's outcome columns only move forward, and the ledger cannot be truncated.

0005_ledger made postings append-only and froze every column of a ledger transaction but its
outcome: `pending_status`, `resolved_by` and `reversed_by`. Those could then move any way: a
posted reservation back to open (and so posted twice, each time releasing it), its resolving
transaction swapped for another, a reversal forgotten. The journal only ever moves them one
way (`JournalRepository.set_pending_outcome`, `set_reversed_by`), and now the database refuses
anything else:

- `pending_status` and `resolved_by` change together, once: from open with no resolution to
  posted or voided, naming the transaction that did it;
- `reversed_by` is set once, from nothing to the reversing transaction.

TRUNCATE fires no row trigger, so it emptied the journal without a word. A statement trigger
now refuses it on `ledger_transactions`, `ledger_postings`, `ledger_accounts` (the running
balances the postings explain) and `ledger_chains` (the hash chains' heads), including when a
TRUNCATE of another table cascades to them.

Each CREATE TRIGGER locks its table in SHARE ROW EXCLUSIVE mode, which waits for the writes
of it under way. Taken one table after another, those locks could deadlock with a posting that
holds one of the tables and then wants another the migration already holds, so the upgrade
takes them all first, in an order every writer of the ledger follows: `ledger_chains` in
EXCLUSIVE mode, then the other three. Every writer (`ledger_post` of core 0010, 0035 and 0063,
`JournalRepository.lock_chain`, `ledger_lock_for_posting`) locks the merchant's chain head
before it touches another ledger table, with SELECT ... FOR UPDATE (ROW SHARE) or an upsert (ROW
EXCLUSIVE), and EXCLUSIVE waits for both: once the migration holds `ledger_chains` no writer
holds the other tables, and a writer that comes later waits at the chain head holding none of
them. The triggers' own order (transactions first) deadlocked with a merchant's first posting,
which writes its chain head and ledger accounts before its transaction; SHARE ROW EXCLUSIVE on
the chain heads first would deadlock with any later posting, which only locks its head's row
(ROW SHARE, which that mode lets through) and writes its transaction, postings and balances
before it updates the head. Plain reads of the ledger (ACCESS SHARE) wait for none of these
locks, which last as long as the migration's short transaction.

Like the row triggers of 0005, these protect the ledger from remit's own code and from a
mistaken statement, not from a superuser, who can drop a trigger or run with
`session_replication_role = replica` (which the tests do to empty their database between
tests). The hash chain is untouched: the outcome columns were never part of it.

Revision ID: 0064_ledger_outcomes_forward
Revises: 0063_ledger_balanced_on_server
"""

from alembic import op

revision = "0064_ledger_outcomes_forward"
down_revision = "0063_ledger_balanced_on_server"
branch_labels = None
depends_on = None

_JOURNAL_TABLES = ("ledger_transactions", "ledger_postings", "ledger_accounts", "ledger_chains")

# 0005's check of the columns that never change, then the outcome's one-way moves.
_FORWARD_ONLY = """
CREATE OR REPLACE FUNCTION ledger_refuse_transaction_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' OR
       (NEW.account_id, NEW.id, NEW.sequence, NEW.kind, NEW.pending_transaction_id,
        NEW.expires_at, NEW.metadata, NEW.description, NEW.payload_digest, NEW.hash,
        NEW.previous_hash, NEW.created_at)
       IS DISTINCT FROM
       (OLD.account_id, OLD.id, OLD.sequence, OLD.kind, OLD.pending_transaction_id,
        OLD.expires_at, OLD.metadata, OLD.description, OLD.payload_digest, OLD.hash,
        OLD.previous_hash, OLD.created_at)
    THEN
        RAISE EXCEPTION 'ledger transactions are append-only (% refused)', TG_OP;
    END IF;
    IF (NEW.pending_status, NEW.resolved_by) IS DISTINCT FROM (OLD.pending_status, OLD.resolved_by)
       AND NOT (OLD.pending_status = 'open' AND OLD.resolved_by IS NULL
                AND NEW.pending_status IN ('posted', 'voided') AND NEW.resolved_by IS NOT NULL)
    THEN
        RAISE EXCEPTION 'ledger transaction % of %: its pending outcome cannot move from % '
            '(resolved by %) to % (resolved by %)', OLD.id, OLD.account_id,
            coalesce(OLD.pending_status, 'none'), coalesce(OLD.resolved_by, 'none'),
            coalesce(NEW.pending_status, 'none'), coalesce(NEW.resolved_by, 'none');
    END IF;
    IF NEW.reversed_by IS DISTINCT FROM OLD.reversed_by
       AND NOT (OLD.reversed_by IS NULL AND NEW.reversed_by IS NOT NULL)
    THEN
        RAISE EXCEPTION 'ledger transaction % of %: it was reversed by %, which cannot change',
            OLD.id, OLD.account_id, OLD.reversed_by;
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
"""

# 0005_ledger's definition, byte for byte.
_ANY_OUTCOME = """
CREATE OR REPLACE FUNCTION ledger_refuse_transaction_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' OR
       (NEW.account_id, NEW.id, NEW.sequence, NEW.kind, NEW.pending_transaction_id,
        NEW.expires_at, NEW.metadata, NEW.description, NEW.payload_digest, NEW.hash,
        NEW.previous_hash, NEW.created_at)
       IS DISTINCT FROM
       (OLD.account_id, OLD.id, OLD.sequence, OLD.kind, OLD.pending_transaction_id,
        OLD.expires_at, OLD.metadata, OLD.description, OLD.payload_digest, OLD.hash,
        OLD.previous_hash, OLD.created_at)
    THEN
        RAISE EXCEPTION 'ledger transactions are append-only (% refused)', TG_OP;
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
"""

_REFUSE_TRUNCATE = """
CREATE FUNCTION ledger_refuse_truncate() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only (TRUNCATE of % refused)', TG_TABLE_NAME;
END
$$ LANGUAGE plpgsql;
"""


def upgrade() -> None:
    # The order the ledger's writers lock its tables in (the docstring says why).
    op.execute("LOCK TABLE ledger_chains IN EXCLUSIVE MODE")
    op.execute(
        "LOCK TABLE ledger_accounts, ledger_transactions, ledger_postings "
        "IN SHARE ROW EXCLUSIVE MODE"
    )
    op.execute(_FORWARD_ONLY)
    op.execute(_REFUSE_TRUNCATE)
    for table in _JOURNAL_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_truncate()"
        )


def downgrade() -> None:
    for table in _JOURNAL_TABLES:
        op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
    op.execute("DROP FUNCTION ledger_refuse_truncate()")
    op.execute(_ANY_OUTCOME)
