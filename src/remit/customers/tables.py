from sqlalchemy import Column, DateTime, ForeignKey, Index, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

from remit.storage.schema import core_metadata

customers = Table(
    "customers",
    core_metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("email", Text, nullable=True),
    Column("name", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("phone", Text, nullable=True),
    Column("business_name", Text, nullable=True),
    Column("individual_name", Text, nullable=True),
    Column("address", JSONB, nullable=True),
    Column("shipping", JSONB, nullable=True),
    Column("metadata", JSONB, nullable=False),
    Column("preferred_locales", JSONB, nullable=False),
    Column("tax_exempt", Text, nullable=False),
    # The id of one of the customer's payment methods (Stripe's
    # invoice_settings.default_payment_method); like payment_methods.customer_id, no foreign key.
    Column("default_payment_method_id", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    Index("ix_customers_account_created", "account_id", "created_at", "id"),
)
