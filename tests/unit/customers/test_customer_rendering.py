"""A customer as remit renders it, beside Stripe's example customer, and as an update over
gRPC (which the REST facade's update calls) changes it."""

from datetime import UTC, datetime

from remit.core.jsonview import JsonObject, to_json
from remit.customers.domain import Customer, update_customer
from remit.customers.grpc import _fields, customer_message
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2 as pb

NOW = datetime(2026, 12, 6, tzinfo=UTC)


def test_a_new_customers_next_invoice_is_the_first() -> None:
    """Stripe's spec gives `next_invoice_sequence` no null, and its example customer, with no
    invoices yet, shows 1. remit issues no invoices, so every customer's next one is its
    first."""
    customer = Customer(id="cus_1", account_id="acct_1", created_at=NOW)
    assert to_json(customer_message(customer))["next_invoice_sequence"] == 1


def _updated_over_grpc(customer: Customer, request: pb.UpdateCustomerRequest) -> JsonObject:
    """`request` applied to `customer` as the UpdateCustomer RPC applies it (the REST facade's
    update is this request), and the customer rendered."""
    return to_json(customer_message(update_customer(customer, _fields(request, update=True))))


SHIPPED = Customer(
    id="cus_1",
    account_id="acct_1",
    created_at=NOW,
    address={"line1": "2 Rue Royale", "city": "Paris", "country": "FR"},
    shipping={
        "name": "Ada Lovelace",
        "phone": "+33 1 23 45 67 89",
        "address": {"line1": "2 Rue Royale", "city": "Paris", "country": "FR"},
    },
)


def test_shipping_parts_given_merge_into_the_stored_shipping() -> None:
    """Stripe updates a customer "by setting the values of the parameters passed. Any
    parameters not provided will be left unchanged" (its API reference for the customer
    update), and remit reads a hash's keys as parameters of their own, as it does for the
    customer's `address` and a payment method's `billing_details`: a new name and city keep
    the street, country and phone."""
    request = pb.UpdateCustomerRequest(
        id="cus_1",
        shipping=common_pb2.Shipping(name="Ada King", address=common_pb2.Address(city="Nice")),
    )

    shipping = _updated_over_grpc(SHIPPED, request)["shipping"]

    assert shipping == {
        "name": "Ada King",
        "phone": "+33 1 23 45 67 89",
        "address": {
            "city": "Nice",
            "country": "FR",
            "line1": "2 Rue Royale",
            "line2": None,
            "postal_code": None,
            "state": None,
        },
        "carrier": None,
        "tracking_number": None,
    }


def test_an_empty_shipping_part_clears_only_that_part() -> None:
    request = pb.UpdateCustomerRequest(
        id="cus_1",
        shipping=common_pb2.Shipping(
            name="Ada Lovelace", phone="", address=common_pb2.Address(line1="")
        ),
    )

    shipping = _updated_over_grpc(SHIPPED, request)["shipping"]

    assert isinstance(shipping, dict)
    assert (shipping["phone"], shipping["address"]) == (
        None,
        {
            "city": "Paris",
            "country": "FR",
            "line1": None,
            "line2": None,
            "postal_code": None,
            "state": None,
        },
    )


def test_clearing_shipping_still_drops_it_all() -> None:
    request = pb.UpdateCustomerRequest(id="cus_1", clear_shipping=True)
    assert _updated_over_grpc(SHIPPED, request)["shipping"] is None


def test_an_address_part_given_merges_into_the_stored_address() -> None:
    """The same rule for the customer's own address, over the RPC the REST facade calls."""
    request = pb.UpdateCustomerRequest(id="cus_1", address=common_pb2.Address(city="Nice"))

    address = _updated_over_grpc(SHIPPED, request)["address"]

    assert address == {
        "city": "Nice",
        "country": "FR",
        "line1": "2 Rue Royale",
        "line2": None,
        "postal_code": None,
        "state": None,
    }
