"""A customer as remit renders it, beside Stripe's example customer."""

from datetime import UTC, datetime

from remit.core.jsonview import to_json
from remit.customers.domain import Customer
from remit.customers.grpc import customer_message

NOW = datetime(2026, 12, 6, tzinfo=UTC)


def test_a_new_customers_next_invoice_is_the_first() -> None:
    """Stripe's spec gives `next_invoice_sequence` no null, and its example customer, with no
    invoices yet, shows 1. remit issues no invoices, so every customer's next one is its
    first."""
    customer = Customer(id="cus_1", account_id="acct_1", created_at=NOW)
    assert to_json(customer_message(customer))["next_invoice_sequence"] == 1
