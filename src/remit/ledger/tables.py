"""The ledger's tables: the journal (transactions, postings), balances, and what Stripe shows.

`ledger_accounts` is also the balances table: each row carries its running balances, updated
in the same transaction as the postings that change them, so reading a balance is one row.
Postings are append-only (a trigger refuses UPDATE and DELETE, see the migration); a correction
is a reversing transaction.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from remit.storage.schema import core_metadata

ledger_accounts = Table(
    "ledger_accounts",
    core_metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("currency", Text, nullable=False),
    # Balance guard: postings may never take posted minus pending-outgoing below zero.
    Column("non_negative", Boolean, nullable=False),
    Column("posted_balance_minor", BigInteger, nullable=False),
    Column("pending_incoming_minor", BigInteger, nullable=False),
    Column("pending_outgoing_minor", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("account_id", "name", "currency"),
    # What a posting's foreign key refers to (`ledger_postings`).
    UniqueConstraint("account_id", "id"),
)

# The head of each account's hash chain. Locking this row first serialises an account's
# postings, which is what makes the chain (and sequence numbers) well defined.
ledger_chains = Table(
    "ledger_chains",
    core_metadata,
    Column("account_id", Text, ForeignKey("accounts.id"), primary_key=True),
    Column("last_sequence", BigInteger, nullable=False),
    Column("last_hash", Text, nullable=False),
)

ledger_transactions = Table(
    "ledger_transactions",
    core_metadata,
    Column("account_id", Text, ForeignKey("accounts.id"), primary_key=True),
    Column("id", Text, primary_key=True),
    Column("sequence", BigInteger, nullable=False),
    Column("kind", Text, nullable=False),
    Column("pending_transaction_id", Text, nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("metadata", JSONB, nullable=False),
    Column("description", Text, nullable=True),
    # SHA-256 of the request that created it: a retry with the same id compares against it.
    Column("payload_digest", Text, nullable=False),
    Column("hash", Text, nullable=False),
    Column("previous_hash", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The only mutable columns: outcome of a pending transaction, and a reversal's id.
    Column("pending_status", Text, nullable=True),
    Column("resolved_by", Text, nullable=True),
    Column("reversed_by", Text, nullable=True),
    UniqueConstraint("account_id", "sequence"),
    Index(
        "ix_ledger_transactions_open_pending",
        "expires_at",
        postgresql_where=text("pending_status = 'open'"),
    ),
)

ledger_postings = Table(
    "ledger_postings",
    core_metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("account_id", Text, nullable=False),
    Column("transaction_id", Text, nullable=False),
    Column("ledger_account_id", Text, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    ForeignKeyConstraint(
        ["account_id", "transaction_id"],
        ["ledger_transactions.account_id", "ledger_transactions.id"],
        name="fk_ledger_postings_transaction",
    ),
    # The ledger account is the posting's own merchant's: the hash covers the account's name
    # and currency, not its owner (core migration 0082).
    ForeignKeyConstraint(
        ["account_id", "ledger_account_id"],
        ["ledger_accounts.account_id", "ledger_accounts.id"],
        name="fk_ledger_postings_ledger_account_owner",
    ),
    Index("ix_ledger_postings_transaction", "account_id", "transaction_id"),
    Index("ix_ledger_postings_ledger_account_id", "ledger_account_id"),
)

balance_transactions = Table(
    "balance_transactions",
    core_metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    # The ledger transaction that moved the money this row describes (one row per transaction):
    # a pending refund's hold, then the refund's posting, which takes over under the same row.
    Column("ledger_transaction_id", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("reporting_category", Text, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("fee", BigInteger, nullable=False),
    Column("net", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("available_on", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("fee_details", JSONB, nullable=False),
    Column("source_id", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("payout_id", Text, nullable=True),
    # The charge a charge, refund or refund failure belongs to (refunds look up their charge).
    Column("charge_id", Text, nullable=True),
    # What reconciliation matches against the acquirer's settlement rows; a refund has it once
    # the acquirer made it.
    Column("acquirer_reference", Text, nullable=True),
    Column("authorization_id", Text, nullable=True),
    UniqueConstraint("account_id", "ledger_transaction_id"),
    Index("ix_balance_transactions_account_created", "account_id", "created_at", "id"),
    Index("ix_balance_transactions_account_source", "account_id", "source_id"),
    Index("ix_balance_transactions_account_payout", "account_id", "payout_id"),
    Index("ix_balance_transactions_account_charge", "account_id", "charge_id"),
    Index("ix_balance_transactions_created", "created_at"),
    # Reconciliation finds a settlement row's balance transaction by its reference, whatever
    # day the ledger recorded it (core migration 0030).
    Index(
        "ix_balance_transactions_acquirer_reference",
        "acquirer_reference",
        postgresql_where=text("acquirer_reference IS NOT NULL"),
    ),
    Index(
        "ix_balance_transactions_due",
        "available_on",
        postgresql_where=text("status = 'pending'"),
    ),
    # One `refund` row per refund, whichever process finishes it (core migration 0040).
    Index(
        "ux_balance_transactions_refund_source",
        "account_id",
        "source_id",
        unique=True,
        postgresql_where=text("type = 'refund'"),
    ),
)

# Due funds the release job could not make available because the database refuses the move
# for its values (a balance that would pass a bigint's range): the same move fails the same way
# on every run, so the job records it here once and claims it no more (`remit.ledger.jobs`).
# Deleting the row lets the job try it again.
balance_release_failures = Table(
    "balance_release_failures",
    core_metadata,
    Column("id", Text, ForeignKey("balance_transactions.id"), primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("failed_at", DateTime(timezone=True), nullable=False),
    # The SQLSTATE, the driver's error class and the first line of the server's message.
    Column("error", Text, nullable=False),
)

payouts = Table(
    "payouts",
    core_metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("arrival_date", DateTime(timezone=True), nullable=False),
    Column("automatic", Boolean, nullable=False),
    Column("method", Text, nullable=False),
    Column("source_type", Text, nullable=False),
    Column("balance_transaction_id", Text, nullable=True),
    Column("failure_balance_transaction_id", Text, nullable=True),
    Column("failure_code", Text, nullable=True),
    Column("failure_message", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("destination", Text, nullable=True),
    Column("statement_descriptor", Text, nullable=True),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_payouts_account_created", "account_id", "created_at", "id"),
    # What the simulated bank moves on next (`BalanceRepository.claim_due_payouts`): pending
    # payouts by creation, in-transit ones by arrival date.
    Index("ix_payouts_pending_due", "created_at", postgresql_where=text("status = 'pending'")),
    Index(
        "ix_payouts_in_transit_due", "arrival_date", postgresql_where=text("status = 'in_transit'")
    ),
)

reconciliations = Table(
    "reconciliations",
    core_metadata,
    Column("id", Text, primary_key=True),
    Column("date", Text, nullable=False),
    Column("account_id", Text, nullable=True),
    # When the run finished and was stored.
    Column("created_at", DateTime(timezone=True), nullable=False),
    # When it began; NULL for runs stored before core migration 0038 recorded it.
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("matched_count", Integer, nullable=False),
    Column("missing_in_ledger_count", Integer, nullable=False),
    Column("missing_at_acquirer_count", Integer, nullable=False),
    Column("amount_mismatch_count", Integer, nullable=False),
    Column("fee_mismatch_count", Integer, nullable=False, server_default=text("0")),
    # Refunds the ledger booked as failed that the acquirer settled (core migration 0055).
    Column("outcome_mismatch_count", Integer, nullable=False, server_default=text("0")),
    # The day was not over (UTC) when it ran (`remit.ledger.reconcile`).
    Column("partial", Boolean, nullable=False, server_default=text("false")),
    # The later run of the same date and account scope that replaced this one. No foreign key:
    # the older run is marked in the transaction that inserts the newer one, just before it.
    Column("superseded_by", Text, nullable=True),
    # One current (not superseded) run per date and scope, the scope being the account or, for
    # a run over every account, none.
    Index(
        "uq_reconciliations_current",
        "date",
        text("coalesce(account_id, '')"),
        unique=True,
        postgresql_where=text("superseded_by IS NULL"),
    ),
)

reconciliation_rows = Table(
    "reconciliation_rows",
    core_metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("reconciliation_id", Text, ForeignKey("reconciliations.id"), nullable=False),
    Column("status", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("reference", Text, nullable=False),
    Column("authorization_id", Text, nullable=False),
    Column("account_id", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("ledger_amount", BigInteger, nullable=True),
    Column("acquirer_amount", BigInteger, nullable=True),
    Column("ledger_transaction_id", Text, nullable=True),
    Column("acquirer_fee", BigInteger, nullable=True),
    # The network fee the ledger booked (core migration 0031); NULL when the ledger has no
    # item, or booked the capture before it recorded network fees.
    Column("ledger_fee", BigInteger, nullable=True),
    # What the two sides hold otherwise, [{"field", "ledger", "acquirer"}] (core migration
    # 0054); empty for rows stored before it.
    Column("differences", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Index("ix_reconciliation_rows_reconciliation_id", "reconciliation_id"),
    # A run's rows in the order their pages read them: those that differ first, then the
    # matched ones, each by id (`remit.ledger.reconciliation_pages`, core migration 0082).
    Index(
        "ix_reconciliation_rows_page_order",
        "reconciliation_id",
        text("(status = 'matched')"),
        "id",
    ),
)

# A transactional outbox of what the ledger wants announced (balance.available, payout.*).
# Rows are written in the same transaction as the change; the webhooks service consumes them
# (stamping consumed_at), so an event exists if and only if its change committed.
ledger_events = Table(
    "ledger_events",
    core_metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("type", Text, nullable=False),
    Column("object_id", Text, nullable=True),
    # The object at the latest schema (remit.core.jsonview.to_json of its message).
    Column("data", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("consumed_at", DateTime(timezone=True), nullable=True),
    Index(
        "ix_ledger_events_unconsumed",
        "id",
        postgresql_where=text("consumed_at IS NULL"),
    ),
)
