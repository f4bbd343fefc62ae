"""The facade shows a payment error's payment method as the object in every response, with the
gRPC side faked: each distinct payment method asked for once, concurrently."""

import asyncio
from dataclasses import dataclass, field

from starlette.testclient import TestClient

from remit.core.errors import ErrorKind, RemitError, not_found
from remit.core.jsonview import JsonObject
from remit.rest.app import Operation, build_app
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.listing import list_envelope
from remit.rest.params import Schema
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2 as pb
from tests.support import resources
from tests.support.rest_facade import every_key_is_a_secret_key, faked_dependencies

KEY = "sk_test_" + "a" * 24


@dataclass
class FakePayments:
    asked: list[str] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0

    async def GetPaymentMethod(  # noqa: N802 (the gRPC method name)
        self, request: pb.GetPaymentMethodRequest, **_: object
    ) -> pb.GetPaymentMethodResponse:
        self.asked.append(request.id)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        if request.id == "pm_gone":
            raise not_found("payment_method", request.id, param="payment_method")
        if request.id == "pm_unreachable":
            raise RemitError(
                "The service is unavailable.", kind=ErrorKind.UNAVAILABLE, error_type="api_error"
            )
        card = pb.PaymentMethodCard(
            brand=common_pb2.CARD_BRAND_VISA, last4="0002", exp_month=12, exp_year=2034
        )
        return pb.GetPaymentMethodResponse(
            payment_method=pb.PaymentMethod(
                id=request.id, card=card, type=pb.PAYMENT_METHOD_TYPE_CARD
            )
        )


def declined(intent_id: str, method_id: str) -> pb.PaymentIntent:
    intent = resources.payment_intent(
        id=intent_id, status=pb.PAYMENT_INTENT_STATUS_REQUIRES_PAYMENT_METHOD
    )
    intent.ClearField("payment_method")
    intent.last_payment_error.CopyFrom(
        pb.PaymentError(type="card_error", code="card_declined", payment_method=method_id)
    )
    return intent


async def list_declined(context: ApiContext, deps: Dependencies) -> JsonObject:
    intents = [
        declined("pi_1", "pm_visa"),
        declined("pi_2", "pm_amex"),
        declined("pi_3", "pm_visa"),
        declined("pi_4", "pm_gone"),
    ]
    return list_envelope(intents, has_more=False, url="/v1/payment_intents")


async def decline(context: ApiContext, deps: Dependencies) -> JsonObject:
    raise RemitError(
        "Your card was declined.",
        kind=ErrorKind.CARD_DECLINED,
        error_type="card_error",
        code="card_declined",
        related=declined("pi_1", "pm_visa"),
    )


async def captured_after_a_decline(context: ApiContext, deps: Dependencies) -> JsonObject:
    return list_envelope(
        [declined("pi_5", "pm_unreachable"), declined("pi_6", "pm_visa")],
        has_more=False,
        url="/v1/payment_intents",
    )


OPERATIONS = [
    Operation("GET", "/v1/payment_intents", Schema({}), list_declined),
    Operation("GET", "/v1/payment_intents/unreachable", Schema({}), captured_after_a_decline),
    Operation("POST", "/v1/payment_intents", Schema({}), decline),
]


def _client() -> tuple[TestClient, FakePayments]:
    payments = FakePayments()

    deps = faked_dependencies(every_key_is_a_secret_key, payments=payments)
    return TestClient(build_app(deps, OPERATIONS)), payments


def test_a_list_fetches_each_distinct_payment_method_once_and_concurrently() -> None:
    client, payments = _client()
    response = client.get("/v1/payment_intents", auth=(KEY, ""))
    assert response.status_code == 200
    shown = [intent["last_payment_error"]["payment_method"] for intent in response.json()["data"]]
    assert [method["id"] for method in shown[:3]] == ["pm_visa", "pm_amex", "pm_visa"]
    assert {method["object"] for method in shown[:3]} == {"payment_method"}
    assert shown[0]["card"]["last4"] == "0002"
    # A payment method that is not found stays an id instead of failing the list.
    assert shown[3] == "pm_gone"
    assert sorted(payments.asked) == ["pm_amex", "pm_gone", "pm_visa"]
    assert payments.most_in_flight == 3


def test_a_decline_shows_the_object_in_the_error_and_in_its_intent() -> None:
    client, payments = _client()
    response = client.post("/v1/payment_intents", auth=(KEY, ""))
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["payment_method"]["object"] == "payment_method"
    assert error["payment_method"]["card"]["last4"] == "0002"
    embedded = error["payment_intent"]["last_payment_error"]
    assert embedded["payment_method"] == error["payment_method"]
    assert payments.asked == ["pm_visa"]


def test_a_payment_method_the_core_cannot_answer_for_stays_an_id_and_the_answer_stands() -> None:
    """What the response reports has already happened (a capture or cancel committed); a
    payment method shown for convenience must not turn it into an error."""
    client, _ = _client()
    response = client.get("/v1/payment_intents/unreachable", auth=(KEY, ""))
    assert response.status_code == 200
    shown = [intent["last_payment_error"]["payment_method"] for intent in response.json()["data"]]
    assert shown[0] == "pm_unreachable"
    assert shown[1]["object"] == "payment_method"
