"""How the JSON converter renders repeated fields: a list, or null where Stripe shows null."""

from typing import Any

from remit.core.jsonview import to_json
from remit.versioning.openapi import document
from remit_api.payments.v1 import payments_pb2 as pb
from versions import LATEST_VERSION


def test_a_list_marked_null_when_empty_renders_null_when_unset_and_a_list_when_set() -> None:
    unset = to_json(pb.PaymentIntent(id="pi_1"))
    # Stripe: null until the merchant restricts the types; payment_method_types is always a list.
    assert unset["allowed_payment_method_types"] is None
    assert unset["excluded_payment_method_types"] is None
    assert unset["payment_method_types"] == []
    restricted = to_json(pb.PaymentIntent(id="pi_1", allowed_payment_method_types=["card"]))
    assert restricted["allowed_payment_method_types"] == ["card"]


def test_the_openapi_document_says_such_a_list_may_be_null() -> None:
    schemas: Any = document(LATEST_VERSION)["components"]
    allowed = schemas["schemas"]["payment_intent"]["properties"]["allowed_payment_method_types"]
    assert {"type": "null"} in allowed["anyOf"]
