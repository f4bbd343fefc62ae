"""The render and request-upgrade steps of `dispatch`, with the gRPC side faked."""

from dataclasses import dataclass, field

from starlette.testclient import TestClient

from remit.accounts.domain import KeyKind, Principal
from remit.core.jsonview import JsonObject, to_json
from remit.rest.app import Operation, build_app
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.errors import StripeError
from remit.rest.params import Integer, Schema, String, StringList
from remit_api.accounts.v1 import accounts_pb2
from remit_api.payments.v1 import payments_pb2 as pb
from tests.support import resources
from tests.support.rest_facade import faked_dependencies
from versions import LATEST_VERSION

KEY = "sk_test_" + "a" * 24


@dataclass
class FakeAccounts:
    pinned: str | None = None

    async def PinApiVersion(  # noqa: N802 (the gRPC method name)
        self, request: accounts_pb2.PinApiVersionRequest, **_: object
    ) -> accounts_pb2.PinApiVersionResponse:
        self.pinned = self.pinned or request.api_version
        return accounts_pb2.PinApiVersionResponse(api_version=self.pinned)


@dataclass
class FakePayments:
    charges_asked: list[str] = field(default_factory=list)
    unavailable: bool = False

    async def ListChargesOfPaymentIntents(  # noqa: N802
        self, request: pb.ListChargesOfPaymentIntentsRequest, **_: object
    ) -> pb.ListChargesOfPaymentIntentsResponse:
        self.charges_asked.extend(request.payment_intents)
        if self.unavailable:
            raise ConnectionError("the core did not answer")
        return pb.ListChargesOfPaymentIntentsResponse(
            pages=[
                pb.ChargesOfPaymentIntent(payment_intent=intent_id, data=[resources.charge()])
                for intent_id in request.payment_intents
            ]
        )

    async def ListRefundsOfCharges(  # noqa: N802
        self, request: pb.ListRefundsOfChargesRequest, **_: object
    ) -> pb.ListRefundsOfChargesResponse:
        return pb.ListRefundsOfChargesResponse(
            pages=[pb.RefundsOfCharge(charge=charge_id) for charge_id in request.charges]
        )


seen_params: list[dict[str, object]] = []


async def create(context: ApiContext, deps: Dependencies) -> JsonObject:
    seen_params.append(dict(context.params))
    return to_json(resources.payment_intent(status=pb.PAYMENT_INTENT_STATUS_REQUIRES_ACTION))


async def decline(context: ApiContext, deps: Dependencies) -> JsonObject:
    raise StripeError.invalid_request("Invalid card number", param="card[number]")


async def decline_confirm(context: ApiContext, deps: Dependencies) -> JsonObject:
    intent = resources.payment_intent(status=pb.PAYMENT_INTENT_STATUS_REQUIRES_PAYMENT_METHOD)
    raise StripeError(
        402,
        "card_error",
        "Your card was declined.",
        code="card_declined",
        decline_code="generic_decline",
        payment_intent=to_json(intent),
    )


OPERATIONS = [
    Operation(
        "POST",
        "/v1/payment_intents",
        Schema(
            {
                "amount": Integer(),
                "currency": String(),
                "payment_method_types": StringList(),
            }
        ),
        create,
    ),
    Operation("POST", "/v1/tokens", Schema({"card": String()}), decline),
    Operation("POST", "/v1/payment_methods", Schema({"card": String()}), decline),
    Operation("POST", "/v1/payment_intents/{intent}/confirm", Schema({}), decline_confirm),
]


def _client(pinned: str | None) -> tuple[TestClient, FakeAccounts, FakePayments]:
    accounts, payments = FakeAccounts(pinned), FakePayments()

    async def lookup(key: str) -> Principal | None:
        return Principal("acct_1", "key_1", KeyKind.SECRET, False, accounts.pinned, False)

    deps = faked_dependencies(lookup, accounts=accounts, payments=payments)
    return TestClient(build_app(deps, OPERATIONS)), accounts, payments


def test_a_first_request_pins_the_latest_version_and_says_so_in_the_response() -> None:
    client, accounts, _ = _client(None)
    response = client.post("/v1/payment_intents", data={"amount": "5"}, auth=(KEY, ""))
    assert response.status_code == 200
    assert accounts.pinned == LATEST_VERSION
    assert response.headers["stripe-version"] == LATEST_VERSION
    assert response.json()["status"] == "requires_action"


def test_an_account_pinned_in_2018_sees_its_version_and_related_charges() -> None:
    client, _, payments = _client("2018-11-08")
    response = client.post(
        "/v1/payment_intents",
        data={"amount": "5", "allowed_source_types[0]": "card"},
        auth=(KEY, ""),
    )
    body = response.json()
    assert response.headers["stripe-version"] == "2018-11-08"
    assert body["status"] == "requires_source_action"
    assert body["charges"]["data"][0]["id"] == "ch_3Example"
    assert payments.charges_asked == ["pi_3Example"]
    assert seen_params[-1]["payment_method_types"] == ["card"]


def test_a_decline_whose_charges_cannot_be_listed_is_still_at_the_version_asked_for() -> None:
    """The decline must reach the client, at its version: only the intent's `charges`, which
    could not be listed, are left out."""
    client, _, payments = _client("2018-11-08")
    payments.unavailable = True
    response = client.post("/v1/payment_intents/pi_3Example/confirm", auth=(KEY, ""))
    error = response.json()["error"]
    assert (response.status_code, error["type"], error["decline_code"]) == (
        402,
        "card_error",
        "generic_decline",
    )
    assert payments.charges_asked == ["pi_3Example"]
    assert response.headers["stripe-version"] == "2018-11-08"
    intent = error["payment_intent"]
    assert (intent["status"], intent["invoice"]) == ("requires_source", None)
    assert intent["allowed_source_types"] == ["card"]
    assert "charges" not in intent


def test_the_stripe_version_header_overrides_the_pin_for_one_request() -> None:
    client, _, _ = _client("2018-11-08")
    response = client.post(
        "/v1/payment_intents",
        data={"amount": "5"},
        auth=(KEY, ""),
        headers={"Stripe-Version": LATEST_VERSION},
    )
    assert response.headers["stripe-version"] == LATEST_VERSION
    assert "charges" not in response.json()


def test_a_refused_parameter_is_a_versioned_400() -> None:
    client, _, _ = _client(None)
    response = client.post(
        "/v1/payment_intents", data={"payment_method_types[0]": "card"}, auth=(KEY, "")
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "payment_method_types_no_longer_supported"
    assert response.headers["stripe-version"] == LATEST_VERSION


def test_errors_are_versioned_and_carry_the_version_header() -> None:
    client, _, _ = _client("2015-10-01")
    old = client.post("/v1/tokens", data={"card": "x"}, auth=(KEY, ""))
    assert (old.status_code, old.json()["error"]["type"]) == (402, "card_error")
    assert old.headers["stripe-version"] == "2015-10-01"
    new = client.post(
        "/v1/tokens", data={"card": "x"}, auth=(KEY, ""), headers={"Stripe-Version": "2015-10-12"}
    )
    assert (new.status_code, new.json()["error"]["type"]) == (400, "invalid_request_error")


def test_errors_of_other_operations_naming_a_card_parameter_stay_400_before_2015_10_12() -> None:
    client, _, _ = _client("2015-10-01")
    refused = client.post("/v1/payment_methods", data={"card": "x"}, auth=(KEY, ""))
    assert (refused.status_code, refused.json()["error"]["type"]) == (400, "invalid_request_error")
    assert refused.json()["error"]["param"] == "card[number]"


def test_an_unknown_version_is_a_400_and_even_auth_errors_carry_a_version() -> None:
    client, _, _ = _client(None)
    unknown = client.post(
        "/v1/payment_intents", auth=(KEY, ""), headers={"Stripe-Version": "2019-13-01"}
    )
    assert unknown.status_code == 400
    assert "2019-13-01" in unknown.json()["error"]["message"]
    unauthenticated = client.post("/v1/payment_intents", headers={"Stripe-Version": "2017-05-25"})
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["stripe-version"] == "2017-05-25"


def test_the_openapi_document_is_served_without_a_key_for_any_known_version() -> None:
    client, _, _ = _client(None)
    response = client.get("/v1/openapi.json", params={"version": "2018-11-08"})
    assert response.status_code == 200
    assert response.json()["info"]["version"] == "2018-11-08"
    assert response.headers["stripe-version"] == "2018-11-08"
    assert client.get("/v1/openapi.json").json()["info"]["version"] == LATEST_VERSION
    bad = client.get("/v1/openapi.json", params={"version": "1999-01-01"})
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
