from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

from remit.storage.schema import core_metadata

payment_intents = Table(
    "payment_intents",
    core_metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("capture_method", Text, nullable=False),
    Column("confirmation_method", Text, nullable=False),
    Column("client_secret", Text, nullable=False),
    Column("customer_id", Text, nullable=True),
    Column("payment_method_id", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("receipt_email", Text, nullable=True),
    Column("statement_descriptor", Text, nullable=True),
    Column("statement_descriptor_suffix", Text, nullable=True),
    Column("setup_future_usage", Text, nullable=True),
    Column("metadata", JSONB, nullable=False),
    Column("amount_capturable_minor", BigInteger, nullable=False),
    Column("amount_received_minor", BigInteger, nullable=False),
    Column("latest_charge_id", Text, nullable=True),
    Column("cancellation_reason", Text, nullable=True),
    Column("canceled_at", DateTime(timezone=True), nullable=True),
    Column("last_payment_error", JSONB, nullable=True),
    Column("next_action", JSONB, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Lists are newest first within an account; the id breaks ties between equal timestamps.
    Index("ix_payment_intents_account_created", "account_id", "created_at", "id"),
)
