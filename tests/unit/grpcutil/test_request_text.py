"""A NUL anywhere in a request is found, and named as Stripe names the parameter."""

import pytest

from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.errors import _read_request
from remit.grpcutil.request_text import field_with_nul
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2 as pb


def test_a_request_without_nul_has_none() -> None:
    request = pb.CreatePaymentIntentRequest(
        amount=1000, currency="usd", metadata={"order": "6735"}, description="Tea \u2615"
    )
    assert field_with_nul(request) is None
    assert field_with_nul(pb.CreatePaymentIntentRequest()) is None


def test_a_nul_is_named_wherever_it_is() -> None:
    address = common_pb2.Address(line1="2 Rue\x00Royale")
    cases = {
        "description": pb.CreatePaymentIntentRequest(description="a\x00"),
        "metadata[order]": pb.CreatePaymentIntentRequest(metadata={"order": "\x00"}),
        "metadata": pb.CreatePaymentIntentRequest(metadata={"or\x00der": "v"}),
        "shipping[address][line1]": pb.CreatePaymentIntentRequest(
            shipping=common_pb2.Shipping(name="Jenny", address=address)
        ),
        "allowed_payment_method_types[1]": pb.CreatePaymentIntentRequest(
            allowed_payment_method_types=["card", "\x00"]
        ),
        "payment_method_data[metadata][k]": pb.CreatePaymentIntentRequest(
            payment_method_data=pb.PaymentMethodData(metadata={"k": "v\x00"})
        ),
    }
    assert {name: field_with_nul(request) for name, request in cases.items()} == {
        name: name for name in cases
    }


def test_the_interceptor_refuses_a_nul_read_from_the_wire_and_passes_the_rest() -> None:
    """The interceptor walks a request only when its bytes hold a zero byte, which every string
    holding a NUL puts there: a request with a NUL anywhere is refused from its bytes alone."""
    deserialize = pb.CreatePaymentIntentRequest.FromString
    for request in (
        pb.CreatePaymentIntentRequest(description="a\x00"),
        pb.CreatePaymentIntentRequest(metadata={"or\x00der": "v"}),
        pb.CreatePaymentIntentRequest(
            payment_method_data=pb.PaymentMethodData(metadata={"k": "v\x00"})
        ),
    ):
        wire = request.SerializeToString()
        assert b"\x00" in wire
        with pytest.raises(RemitError) as refused:
            _read_request(wire, deserialize)
        assert refused.value.kind is ErrorKind.INVALID_ARGUMENT
        assert refused.value.param
    clean = pb.CreatePaymentIntentRequest(amount=1000, currency="usd", metadata={"a": "b"})
    assert _read_request(clean.SerializeToString(), deserialize) == clean
