from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

from remit.storage.schema import core_metadata

accounts = Table(
    "accounts",
    core_metadata,
    Column("id", Text, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("default_currency", Text, nullable=False),
    Column("raw_card_access", Boolean, nullable=False),
    Column("api_version", Text, nullable=True),
    Column("fee_percent_bps", Integer, nullable=False),
    Column("fee_fixed_minor", BigInteger, nullable=False),
    Column("available_delay_days", Integer, nullable=False),
    Column("automatic_payouts", Boolean, nullable=False),
    Column("radar_enabled", Boolean, nullable=False),
)

api_keys = Table(
    "api_keys",
    core_metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("kind", Text, nullable=False),
    Column("key_digest", LargeBinary, nullable=False, unique=True),
    Column("last4", Text, nullable=False),
    Column("livemode", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

# The CreateAccount and CreateApiKey calls made under an idempotency key, and what each made
# (`remit.accounts.admin_requests`). Never a key's plaintext.
admin_idempotency_keys = Table(
    "admin_idempotency_keys",
    core_metadata,
    Column("idempotency_key", Text, primary_key=True),
    Column("endpoint", Text, nullable=False),
    Column("request_digest", LargeBinary, nullable=False),
    Column("account_id", Text, nullable=False),
    Column("api_key_ids", ARRAY(Text), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The worker's reaper deletes the calls by age (`admin_requests.reap`), every hour.
    Index("ix_admin_idempotency_keys_created_at", "created_at"),
)

# Every key made and every stop set on one, appended in the change's own transaction
# (`remit.accounts.key_events`); the database refuses to update or delete a row. Never a key's
# plaintext or digest: its masked form.
api_key_events = Table(
    "api_key_events",
    core_metadata,
    Column("id", Text, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("key_id", Text, ForeignKey("api_keys.id"), nullable=False),
    Column("action", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("masked_key", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("operator", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("stops_at", DateTime(timezone=True), nullable=True),
    Column("stops_at_before", DateTime(timezone=True), nullable=True),
    Column("replaced_by", Text, nullable=True),
    # An account's events, newest first (`remit accounts keys audit`).
    Index("ix_api_key_events_account_created", "account_id", "created_at", "id"),
)
