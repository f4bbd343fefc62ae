"""Radar's tables in the core database: rules, value lists, their history, velocity counters,
reviews, and 3-D Secure challenges."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from remit.storage.schema import core_metadata

radar_rules = Table(
    "radar_rules",
    core_metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("action", Text, nullable=False),
    Column("predicate", Text, nullable=False),
    # Evaluation order within the account, 0 first; kept dense (0..n-1).
    Column("position", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # 1 when made, one more at each change of its action or predicate (core migration 0057): a
    # charge's verdict names the version that decided it.
    Column("version", Integer, nullable=False, server_default=text("1")),
    # Why remit disabled a stored rule that stopped running (core migration 0069: it compares
    # :ip_address: with an address with a zone); shown as its invalid_reason, and cleared when
    # its predicate changes. NULL for every other rule.
    Column("disabled_reason", Text, nullable=True),
    Index("ix_radar_rules_account_position", "account_id", "position"),
)

# Every change to a rule, a value list or an item, written in the change's own transaction
# (remit.radar.history; core migration 0057).
radar_changes = Table(
    "radar_changes",
    core_metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    # rule, radar.value_list or radar.value_list_item.
    Column("object_type", Text, nullable=False),
    Column("object_id", Text, nullable=False),
    # The list, for a list's own changes and its items'.
    Column("value_list_id", Text, nullable=True),
    # created, updated or deleted.
    Column("action", Text, nullable=False),
    # A rule's version after the change (before it, for a deletion).
    Column("rule_version", Integer, nullable=True),
    # The object as it was before the change and after it (null for a creation, a deletion).
    Column("before", JSONB, nullable=True),
    Column("after", JSONB, nullable=True),
    # The key_ id of the API key the change was asked with, or "remit" when none was named.
    Column("changed_by", Text, nullable=False),
    Column("request_id", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_radar_changes_account_created", "account_id", "created_at", "id"),
    Index("ix_radar_changes_object", "account_id", "object_id", "created_at"),
    Index(
        "ix_radar_changes_value_list",
        "account_id",
        "value_list_id",
        "created_at",
        postgresql_where=text("value_list_id IS NOT NULL"),
    ),
)

radar_value_lists = Table(
    "radar_value_lists",
    core_metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("alias", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("item_type", Text, nullable=False),
    Column("metadata", JSONB, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("account_id", "alias"),
    Index("ix_radar_value_lists_account_created", "account_id", "created_at", "id"),
)

radar_value_list_items = Table(
    "radar_value_list_items",
    core_metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("value_list_id", Text, ForeignKey("radar_value_lists.id"), nullable=False),
    Column("value", Text, nullable=False),
    # The value as rules compare it (casefolded unless the list is case-sensitive), so a
    # payment looks its own values up instead of reading whole lists. A list holds each value
    # once (core migration 0056), as Stripe's do.
    Column("value_key", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ux_radar_value_list_items_value", "value_list_id", "value_key", unique=True),
    Index("ix_radar_value_list_items_list_created", "value_list_id", "created_at", "id"),
)

radar_counters = Table(
    "radar_counters",
    core_metadata,
    Column("account_id", Text, nullable=False),
    # card (fingerprint), customer (cus_ id) or ip (address).
    Column("dimension", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    # Ring buffers (see radar/velocity.py), stamped with the minute / hour last advanced to.
    Column("last_minute", BigInteger, nullable=False),
    Column("last_hour", BigInteger, nullable=False),
    Column("attempts_by_minute", ARRAY(Integer), nullable=False),
    Column("attempts_by_hour", ARRAY(Integer), nullable=False),
    Column("declines_by_hour", ARRAY(Integer), nullable=False),
    Column("declines_in_a_row", Integer, nullable=False),
    Column("last_cvc_check", Text, nullable=True),
    Column("last_postal_check", Text, nullable=True),
    # When the last decline of the streak was counted: the streak lapses a day later (core
    # migration 0044; NULL on rows written before it, see radar/velocity.py).
    Column("last_declined_at", DateTime(timezone=True), nullable=True),
    PrimaryKeyConstraint("account_id", "dimension", "key", name="pk_radar_counters"),
)

radar_reviews = Table(
    "radar_reviews",
    core_metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("charge_id", Text, nullable=False),
    Column("payment_intent_id", Text, nullable=False),
    Column("open", Boolean, nullable=False),
    Column("opened_reason", Text, nullable=False),
    Column("closed_reason", Text, nullable=True),
    # While a close refunds or cancels the payment: the reason it will close with (core
    # migration 0045). An approval is refused meanwhile (remit.radar.reviewing).
    Column("closing_reason", Text, nullable=True),
    Column("rule_id", Text, nullable=True),
    Column("ip_address", Text, nullable=True),
    Column("ip_country", Text, nullable=True),
    # Radar's verdict at the time (score, level, top signals), for the reviewer.
    Column("risk", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Index("ix_radar_reviews_account_created", "account_id", "created_at", "id"),
    Index("ix_radar_reviews_charge_id", "charge_id"),
)

three_d_secure_challenges = Table(
    "three_d_secure_challenges",
    core_metadata,
    # Unguessable: the id is the only thing the hosted page needs.
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("payment_intent_id", Text, nullable=False),
    Column("charge_id", Text, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("brand", Text, nullable=False),
    Column("last4", Text, nullable=False),
    # pending, succeeded, failed or expired.
    Column("status", Text, nullable=False),
    Column("return_url", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Index("ix_three_d_secure_challenges_intent", "account_id", "payment_intent_id"),
    # The sweep of expired challenges reads only the pending ones, soonest expired first; a
    # challenge leaves the index when it ends (remit.radar.expired_challenges).
    Index(
        "ix_three_d_secure_challenges_pending_expiry",
        "expires_at",
        postgresql_where=text("status = 'pending'"),
    ),
)
