"""The vault database's tables, on their own metadata: they live in the vault's database only."""

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

from remit.storage.schema import NAMING_CONVENTION

vault_metadata = MetaData(naming_convention=NAMING_CONVENTION)

cards = Table(
    "cards",
    vault_metadata,
    Column("token", Text, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("kek_name", Text, nullable=False),
    Column("kek_version", Integer, nullable=False),
    Column("wrapped_data_key", LargeBinary, nullable=False),
    Column("number_ciphertext", LargeBinary, nullable=False),
    # Dropped at the first authorization or when cvc_expires_at passes (PCI DSS 3.3.1).
    Column("cvc_ciphertext", LargeBinary, nullable=True),
    Column("cvc_expires_at", DateTime(timezone=True), nullable=True),
    Column("fingerprint", Text, nullable=False),
    Column("brand", Text, nullable=False),
    Column("last4", Text, nullable=False),
    Column("exp_month", Integer, nullable=False),
    Column("exp_year", Integer, nullable=False),
    Column("funding", Text, nullable=False),
    Column("country", Text, nullable=False),
    Column("billing_details", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    # What the card's seals are bound to (`remit.vault.crypto.SealFormat`). The default is the
    # format of the cards written before it was kept, and of those a vault of that version
    # still writes during an upgrade.
    Column("seal_format", SmallInteger, nullable=False, server_default="1"),
    # Only a format the vault knows (vault migrations 0007, 0008): it refuses any other as
    # tampered.
    CheckConstraint("seal_format IN (1, 2, 3)", name="seal_format"),
    # Whose fingerprints the card's is comparable with (`remit.vault.crypto.FingerprintScope`,
    # vault migration 0010). The default, as for `seal_format`, is the scope of the cards
    # written before it was kept, and of those a vault of that version still writes during an
    # upgrade: one key for every account.
    Column("fingerprint_scope", SmallInteger, nullable=False, server_default="1"),
    CheckConstraint("fingerprint_scope IN (1, 2)", name="fingerprint_scope"),
    # Re-wrapping walks the cards not deleted still wrapped under an old key version, in
    # (key version, token) pages; every other query of the key version reads those cards too.
    Index(
        "ix_cards_live_kek_version",
        "kek_version",
        "token",
        postgresql_where="deleted_at IS NULL",
    ),
    # The re-seal walks the cards not deleted still sealed in a format before the newest, or
    # whose fingerprint is not their account's alone, by token (vault migrations 0008, 0010);
    # once they are all re-sealed the index is empty, and each pass of the vault's background
    # reads nothing.
    Index(
        "ix_cards_live_to_reseal",
        "token",
        postgresql_where="deleted_at IS NULL AND (seal_format < 3 OR fingerprint_scope < 2)",
    ),
    # The sweep of unreferenced cards walks the cards not yet deleted, oldest first.
    Index("ix_cards_live_created", "created_at", "token", postgresql_where="deleted_at IS NULL"),
    Index(
        "ix_cards_cvc_expires_at",
        "cvc_expires_at",
        postgresql_where="cvc_ciphertext IS NOT NULL",
    ),
)

# Stripe's test ids resolve to one stable card per account, so fingerprints repeat as they do.
test_card_tokens = Table(
    "test_card_tokens",
    vault_metadata,
    Column("account_id", Text, nullable=False),
    Column("test_id", Text, nullable=False),
    Column("token", Text, nullable=False),
    PrimaryKeyConstraint("account_id", "test_id"),
)

# The first answer to each forwarded authorization, replayed to retries of its reference that
# repeat its parameters (`remit.vault.forward_replay`).
forwards = Table(
    "forwards",
    vault_metadata,
    Column("account_id", Text, nullable=False),
    Column("reference", Text, nullable=False),
    Column("token", Text, nullable=False),
    Column("destination", Text, nullable=False),
    Column("result", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # SHA-256 of the parameters the answer is for; NULL on rows recorded before it was kept.
    Column("request_digest", LargeBinary, nullable=True),
    PrimaryKeyConstraint("account_id", "reference"),
)

# Append-only record of every access to card data (PCI DSS 10.x); never holds card data.
audit_events = Table(
    "audit_events",
    vault_metadata,
    Column("id", Text, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("action", Text, nullable=False),
    Column("requester", Text, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("token", Text, nullable=False),
    Column("account_id", Text, nullable=False),
    Column("destination", Text, nullable=False),
    Column("reference", Text, nullable=False),
    Column("succeeded", Boolean, nullable=False),
    Column("key_version", Integer, nullable=False),
    Index("ix_audit_events_created", "created_at", "id"),
    Index("ix_audit_events_token", "token"),
)

# The key check value of each key set the vault's cards are sealed under, recorded when its
# keys are first made: never a key, only what a starting vault compares its own key set with
# (`remit.vault.key_check`).
key_check_values = Table(
    "key_check_values",
    vault_metadata,
    Column("key_set", Text, primary_key=True),
    Column("check_value", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

# The key versions an operator declared lost for good (`remit vault declare-key-version-lost`):
# missing from the key ring, and no copy of the key file holds them. A card under one is refused
# as under a retired version. Never key material: which version, who said so and when.
lost_key_versions = Table(
    "lost_key_versions",
    vault_metadata,
    Column("key_ring", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("declared_by", Text, nullable=False),
    Column("declared_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("key_ring", "version"),
)
