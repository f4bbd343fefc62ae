"""The acquirer database's tables, on its own metadata: it is a separate database.

No column can hold a full card number: authorizations keep the BIN (first six digits) and the
last four, which PCI DSS allows to be stored in the clear, and the check constraints enforce
their lengths.
"""

from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    false,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.types import UserDefinedType

from remit.storage.schema import NAMING_CONVENTION

acquirer_metadata = MetaData(naming_convention=NAMING_CONVENTION)


class PgSnapshot(UserDefinedType[str]):
    """PostgreSQL's snapshot of which transactions have committed (`pg_snapshot`)."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "pg_snapshot"


# The column the database fills with the transaction that wrote an operation.
RECORDED_BY: Final = "recorded_xid"


class Xid8(UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id (`xid8`), which never wraps around."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "xid8"


# So that reading the schema back (the migrations' check against these tables) knows it.
ischema_names.setdefault("xid8", Xid8)


authorizations = Table(
    "authorizations",
    acquirer_metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("authorized_minor", BigInteger, nullable=False),
    Column("captured_minor", BigInteger, nullable=False),
    Column("refunded_minor", BigInteger, nullable=False),
    Column("state", Text, nullable=False),
    Column("card_brand", Text, nullable=False),
    Column("card_funding", Text, nullable=False),
    Column("card_bin", Text, nullable=False),
    Column("card_last4", Text, nullable=False),
    Column("exp_month", Integer, nullable=False),
    Column("exp_year", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # What a later off-session payment citing this authorization is checked against: its
    # network transaction id (NULL for authorizations recorded before it was kept), the
    # cardholder's 3-D Secure, and the cardholder's agreement to off-session payments.
    Column("network_transaction_id", Text, nullable=True),
    Column("three_d_secure_authenticated", Boolean, nullable=False, server_default=false()),
    Column("setup_off_session", Boolean, nullable=False, server_default=false()),
    # Only setups are ever looked up by their network transaction id.
    Index(
        "ix_authorizations_setup_network_transaction_id",
        "network_transaction_id",
        postgresql_where="setup_off_session",
    ),
    # And captured plus what its operations released never exceeds authorized: a sum over
    # `operations`, which a CHECK cannot take, so triggers check it (acquirer migration 0006).
    CheckConstraint(
        "0 <= refunded_minor AND refunded_minor <= captured_minor "
        "AND captured_minor <= authorized_minor",
        name="amounts_within_bounds",
    ),
    CheckConstraint("card_bin ~ '^[0-9]{6}$'", name="card_bin_six_digits"),
    CheckConstraint("card_last4 ~ '^[0-9]{4}$'", name="card_last4_four_digits"),
)

operations = Table(
    "operations",
    acquirer_metadata,
    Column("id", Text, primary_key=True),
    # One operation per reference, whatever its kind: the unique index is what makes
    # concurrent duplicates of a call collapse into one.
    Column("reference", Text, nullable=False, unique=True),
    Column("kind", Text, nullable=False),
    Column("authorization_id", Text, ForeignKey("authorizations.id"), nullable=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("merchant_id", Text, nullable=False),
    Column("approved", Boolean, nullable=False),
    Column("code", Text, nullable=True),
    Column("message", Text, nullable=True),
    Column("request", JSONB, nullable=False),
    Column("authorization_result", JSONB, nullable=True),
    Column("fee_minor", BigInteger, nullable=False),
    Column("settled_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The transaction that wrote the operation, set by the database: which settlement report
    # snapshots see it (`remit.acquirer.settlement_pages`). NULL for operations written before
    # acquirer migration 0003, which every snapshot since sees.
    Column(RECORDED_BY, Xid8(), nullable=True, server_default=text("pg_current_xact_id()")),
    # What the operation released of its authorization back to the cardholder
    # (`remit.acquirer.domain.Operation.released_minor`); acquirer migration 0005.
    Column("released_minor", BigInteger, nullable=False, server_default=text("0")),
    CheckConstraint("released_minor >= 0", name="released_not_negative"),
    Index("ix_operations_authorization_id", "authorization_id"),
    Index(
        "ix_operations_settled_at",
        "settled_at",
        postgresql_where="settled_at IS NOT NULL",
    ),
)


# The settlement grace (`remit.acquirer.settlement_clock.settlement_grace`) of the acquirer
# process last started on this database, from its settings: `remit settlement-report`, run
# with settings of its own, waits at least as long (acquirer migration 0004). One row.
settlement_grace_record = Table(
    "settlement_grace",
    acquirer_metadata,
    Column("id", Boolean, primary_key=True, server_default=true()),
    Column("grace_ms", BigInteger, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("id", name="one_row"),
    CheckConstraint("grace_ms >= 0", name="not_negative"),
)
