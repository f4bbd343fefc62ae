"""A request's text is held to the `max_length` its contract declares, wherever it sits in the
request, and the refusal names the field as Stripe names the parameter."""

from collections.abc import Callable
from typing import Final

import pytest
from google.protobuf.message import Message

from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.errors import _read_request
from remit.grpcutil.request_lengths import field_over_limit, shortest_limit
from remit_api.accounts.v1 import accounts_pb2
from remit_api.common.v1 import common_pb2
from remit_api.ledger.v1 import ledger_pb2
from remit_api.payments.v1 import payments_pb2 as pb
from remit_api.webhooks.v1 import webhooks_pb2


def _address(line1: str) -> common_pb2.Address:
    return common_pb2.Address(line1=line1, country="FR")


Build = Callable[[str], Message]

# Each: the param a value is named by, its field's limit, and a request carrying the value there.
CASES: Final[list[tuple[str, int, Build]]] = [
    ("description", 1000, lambda text: pb.CreatePaymentIntentRequest(description=text)),
    (
        "statement_descriptor_suffix",
        22,
        lambda text: pb.CapturePaymentIntentRequest(id="pi_1", statement_descriptor_suffix=text),
    ),
    (
        "shipping[address][line1]",
        5000,
        lambda text: pb.UpdateChargeRequest(
            id="ch_1", shipping=common_pb2.Shipping(name="Jenny", address=_address(text))
        ),
    ),
    (
        "payment_method_data[billing_details][email]",
        800,
        lambda text: pb.ConfirmPaymentIntentRequest(
            id="pi_1",
            payment_method_data=pb.PaymentMethodData(
                billing_details=common_pb2.BillingDetails(email=text)
            ),
        ),
    ),
    (
        "payment_method_types[1]",
        5000,
        lambda text: pb.UpdatePaymentIntentRequest(id="pi_1", payment_method_types=["card", text]),
    ),
    (
        "invoice_settings[default_payment_method]",
        5000,
        lambda text: pb.UpdateCustomerRequest(
            id="cus_1",
            invoice_settings=pb.CustomerInvoiceSettingsInput(default_payment_method=text),
        ),
    ),
    ("phone", 20, lambda text: pb.CreateCustomerRequest(phone=text)),
    (
        "enabled_events[0]",
        100,
        lambda text: webhooks_pb2.CreateWebhookEndpointRequest(
            url="https://shop.example/hooks", enabled_events=[text]
        ),
    ),
    ("description", 5000, lambda text: ledger_pb2.CreatePayoutRequest(description=text)),
]


@pytest.mark.parametrize(("param", "limit", "build"), CASES)
def test_a_value_at_its_limit_passes_and_one_over_is_named(
    param: str, limit: int, build: Build
) -> None:
    assert field_over_limit(build("x" * limit)) is None
    over = field_over_limit(build("x" * (limit + 1)))
    assert over is not None
    assert (over.param, over.limit, len(over.value)) == (param, limit, limit + 1)


def test_the_limit_counts_characters_not_bytes() -> None:
    assert field_over_limit(pb.CreatePaymentIntentRequest(description="\u2615" * 1000)) is None


def test_a_type_that_declares_no_limit_is_not_walked() -> None:
    assert shortest_limit(accounts_pb2.GetAccountRequest()) is None
    assert shortest_limit(pb.CapturePaymentIntentRequest()) == 22
    assert shortest_limit(pb.CreateCustomerRequest()) == 20


def test_the_interceptor_refuses_an_over_long_value_read_from_the_wire() -> None:
    deserialize = pb.CreatePaymentIntentRequest.FromString
    over = pb.CreatePaymentIntentRequest(
        amount=1000, currency="usd", shipping=common_pb2.Shipping(name="n" * 5001)
    )
    with pytest.raises(RemitError) as refused:
        _read_request(over.SerializeToString(), deserialize)
    error = refused.value
    assert (error.kind, error.code, error.param) == (
        ErrorKind.INVALID_ARGUMENT,
        "parameter_invalid",
        "shipping[name]",
    )
    assert error.message == "Invalid string: nnnnnnnnnnnn...; must be at most 5000 characters"
    within = pb.CreatePaymentIntentRequest(amount=1000, currency="usd", description="d" * 1000)
    assert _read_request(within.SerializeToString(), deserialize) == within


def test_the_refusal_never_quotes_a_card_number() -> None:
    request = pb.CreatePaymentIntentRequest(statement_descriptor="4242 4242 4242 4242 and more")
    with pytest.raises(RemitError) as refused:
        _read_request(request.SerializeToString(), pb.CreatePaymentIntentRequest.FromString)
    assert "4242" not in refused.value.message
    assert refused.value.param == "statement_descriptor"
