"""The ledger: journal, balances, balance transactions, payouts, reconciliations, events.

Revision ID: 0005_ledger
Revises: 0004_idempotency_owner
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005_ledger"
down_revision = "0004_idempotency_owner"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)

# Postings never change once written; transactions change only in their outcome columns. A
# correction is a reversing transaction, never an edit, and the database says so itself.
_APPEND_ONLY = """
CREATE FUNCTION ledger_refuse_posting_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger postings are append-only (% refused)', TG_OP;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER ledger_postings_append_only
    BEFORE UPDATE OR DELETE ON ledger_postings
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_posting_change();

CREATE FUNCTION ledger_refuse_transaction_change() RETURNS trigger AS $$
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

CREATE TRIGGER ledger_transactions_append_only
    BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_transaction_change();
"""


def upgrade() -> None:
    op.create_table(
        "ledger_accounts",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("non_negative", sa.Boolean, nullable=False),
        sa.Column("posted_balance_minor", sa.BigInteger, nullable=False),
        sa.Column("pending_incoming_minor", sa.BigInteger, nullable=False),
        sa.Column("pending_outgoing_minor", sa.BigInteger, nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_accounts"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_ledger_accounts_account_id_accounts"
        ),
        sa.UniqueConstraint(
            "account_id", "name", "currency", name="uq_ledger_accounts_account_id_name_currency"
        ),
    )
    op.create_table(
        "ledger_chains",
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("last_sequence", sa.BigInteger, nullable=False),
        sa.Column("last_hash", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("account_id", name="pk_ledger_chains"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_ledger_chains_account_id_accounts"
        ),
    )
    op.create_table(
        "ledger_transactions",
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("pending_transaction_id", sa.Text, nullable=True),
        sa.Column("expires_at", _TZ, nullable=True),
        sa.Column("metadata", JSONB, nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("payload_digest", sa.Text, nullable=False),
        sa.Column("hash", sa.Text, nullable=False),
        sa.Column("previous_hash", sa.Text, nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("pending_status", sa.Text, nullable=True),
        sa.Column("resolved_by", sa.Text, nullable=True),
        sa.Column("reversed_by", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("account_id", "id", name="pk_ledger_transactions"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_ledger_transactions_account_id_accounts"
        ),
        sa.UniqueConstraint(
            "account_id", "sequence", name="uq_ledger_transactions_account_id_sequence"
        ),
    )
    op.create_index(
        "ix_ledger_transactions_open_pending",
        "ledger_transactions",
        ["expires_at"],
        postgresql_where=sa.text("pending_status = 'open'"),
    )
    op.create_table(
        "ledger_postings",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("transaction_id", sa.Text, nullable=False),
        sa.Column("ledger_account_id", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_postings"),
        sa.ForeignKeyConstraint(
            ["account_id", "transaction_id"],
            ["ledger_transactions.account_id", "ledger_transactions.id"],
            name="fk_ledger_postings_transaction",
        ),
        sa.ForeignKeyConstraint(
            ["ledger_account_id"],
            ["ledger_accounts.id"],
            name="fk_ledger_postings_ledger_account_id_ledger_accounts",
        ),
    )
    op.create_index(
        "ix_ledger_postings_transaction", "ledger_postings", ["account_id", "transaction_id"]
    )
    op.create_index(
        "ix_ledger_postings_ledger_account_id", "ledger_postings", ["ledger_account_id"]
    )
    op.create_table(
        "balance_transactions",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("ledger_transaction_id", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("reporting_category", sa.Text, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("fee", sa.BigInteger, nullable=False),
        sa.Column("net", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("available_on", _TZ, nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("fee_details", JSONB, nullable=False),
        sa.Column("source_id", sa.Text, nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("payout_id", sa.Text, nullable=True),
        sa.Column("charge_id", sa.Text, nullable=True),
        sa.Column("acquirer_reference", sa.Text, nullable=True),
        sa.Column("authorization_id", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_balance_transactions"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_balance_transactions_account_id_accounts"
        ),
        sa.UniqueConstraint(
            "account_id",
            "ledger_transaction_id",
            name="uq_balance_transactions_account_id_ledger_transaction_id",
        ),
    )
    for name, columns in (
        ("ix_balance_transactions_account_created", ["account_id", "created_at", "id"]),
        ("ix_balance_transactions_account_source", ["account_id", "source_id"]),
        ("ix_balance_transactions_account_payout", ["account_id", "payout_id"]),
        ("ix_balance_transactions_account_charge", ["account_id", "charge_id"]),
        ("ix_balance_transactions_created", ["created_at"]),
    ):
        op.create_index(name, "balance_transactions", columns)
    op.create_index(
        "ix_balance_transactions_due",
        "balance_transactions",
        ["available_on"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "payouts",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("arrival_date", _TZ, nullable=False),
        sa.Column("automatic", sa.Boolean, nullable=False),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("source_type", sa.Text, nullable=False),
        sa.Column("balance_transaction_id", sa.Text, nullable=True),
        sa.Column("failure_balance_transaction_id", sa.Text, nullable=True),
        sa.Column("failure_code", sa.Text, nullable=True),
        sa.Column("failure_message", sa.Text, nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("destination", sa.Text, nullable=True),
        sa.Column("statement_descriptor", sa.Text, nullable=True),
        sa.Column("metadata", JSONB, nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_payouts"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_payouts_account_id_accounts"
        ),
    )
    op.create_index("ix_payouts_account_created", "payouts", ["account_id", "created_at", "id"])
    op.create_index(
        "ix_payouts_in_flight",
        "payouts",
        ["status"],
        postgresql_where=sa.text("status IN ('pending', 'in_transit')"),
    )
    op.create_table(
        "reconciliations",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("date", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=True),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("matched_count", sa.Integer, nullable=False),
        sa.Column("missing_in_ledger_count", sa.Integer, nullable=False),
        sa.Column("missing_at_acquirer_count", sa.Integer, nullable=False),
        sa.Column("amount_mismatch_count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reconciliations"),
    )
    op.create_table(
        "reconciliation_rows",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("reconciliation_id", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("authorization_id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("ledger_amount", sa.BigInteger, nullable=True),
        sa.Column("acquirer_amount", sa.BigInteger, nullable=True),
        sa.Column("ledger_transaction_id", sa.Text, nullable=True),
        sa.Column("acquirer_fee", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_reconciliation_rows"),
        sa.ForeignKeyConstraint(
            ["reconciliation_id"],
            ["reconciliations.id"],
            name="fk_reconciliation_rows_reconciliation_id_reconciliations",
        ),
    )
    op.create_index(
        "ix_reconciliation_rows_reconciliation_id", "reconciliation_rows", ["reconciliation_id"]
    )
    op.create_table(
        "ledger_events",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("object_id", sa.Text, nullable=True),
        sa.Column("data", JSONB, nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("consumed_at", _TZ, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_events"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_ledger_events_account_id_accounts"
        ),
    )
    op.create_index(
        "ix_ledger_events_unconsumed",
        "ledger_events",
        ["id"],
        postgresql_where=sa.text("consumed_at IS NULL"),
    )
    op.execute(_APPEND_ONLY)
