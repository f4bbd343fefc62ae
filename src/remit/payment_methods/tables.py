from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    Table,
    Text,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from remit.storage.schema import core_metadata

# Card columns hold only what the vault shares: brand, last four, expiry, fingerprint.
payment_methods = Table(
    "payment_methods",
    core_metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("vault_token", Text, nullable=False),
    Column("brand", Text, nullable=False),
    Column("last4", Text, nullable=False),
    Column("exp_month", Integer, nullable=False),
    Column("exp_year", Integer, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("funding", Text, nullable=False),
    Column("country", Text, nullable=True),
    Column("billing_details", JSONB, nullable=False),
    Column("metadata", JSONB, nullable=False),
    Column("customer_id", Text, nullable=True),
    Column("allow_redisplay", Text, nullable=True),
    Column("test_id", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("detached_at", DateTime(timezone=True), nullable=True),
    # The PaymentIntent that used it while it was attached to no customer: no other may.
    Column("spent_by_intent_id", Text, nullable=True),
    # That intent went through with setup_future_usage: the method may still be attached.
    Column("saved_for_future_usage", Boolean, nullable=False, server_default=false()),
    # The network transaction id of the payment that set the card up for off-session payments.
    Column("off_session_setup_transaction_id", Text, nullable=True),
    Index("ix_payment_methods_account_created", "account_id", "created_at", "id"),
    Index("ix_payment_methods_account_customer", "account_id", "customer_id"),
    # Whether anything still holds a vault card, before the card is deleted at the vault.
    Index("ix_payment_methods_vault_token", "vault_token"),
    # Whether `fingerprint` is known to be the account's own (2), or is as the vault gave it,
    # which before vault migration 0010 was the fingerprint every account shared (1). The
    # conversion (`remit.payment_methods.fingerprint_conversion`) checks the rows of 1 with the
    # vault, rewrites their fingerprint if the account's replaced it, and sets 2 (core
    # migration 0088).
    Column("fingerprint_scope", SmallInteger, nullable=False, server_default="1"),
    CheckConstraint("fingerprint_scope IN (1, 2)", name="fingerprint_scope"),
    # What the conversion has left: empty once every row is checked.
    Index(
        "ix_payment_methods_fingerprint_to_convert",
        "id",
        postgresql_where=text("fingerprint_scope = 1"),
    ),
)

tokens = Table(
    "tokens",
    core_metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("card_id", Text, nullable=False),
    Column("vault_token", Text, nullable=False),
    Column("brand", Text, nullable=False),
    Column("last4", Text, nullable=False),
    Column("exp_month", Integer, nullable=False),
    Column("exp_year", Integer, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("funding", Text, nullable=False),
    Column("country", Text, nullable=True),
    Column("name", Text, nullable=True),
    Column("address", JSONB, nullable=False),
    Column("client_ip", Text, nullable=True),
    Column("metadata", JSONB, nullable=False),
    Column("used", Boolean, nullable=False),
    Column("test_id", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_tokens_vault_token", "vault_token"),
    # As a payment method's (core migration 0088).
    Column("fingerprint_scope", SmallInteger, nullable=False, server_default="1"),
    CheckConstraint("fingerprint_scope IN (1, 2)", name="fingerprint_scope"),
    Index("ix_tokens_fingerprint_to_convert", "id", postgresql_where=text("fingerprint_scope = 1")),
)

# How far the worker's sweep of unreferenced vault cards has got (`remit.payment_methods.
# vault_sweep`): the last card, in the vault's (created_at, token) order, before which every card
# old enough to sweep was found referenced or deleted. One row, named after the sweep.
vault_sweep_watermarks = Table(
    "vault_sweep_watermarks",
    core_metadata,
    Column("name", Text, primary_key=True),
    Column("card_created_at", DateTime(timezone=True), nullable=False),
    Column("vault_token", Text, nullable=False),
)
