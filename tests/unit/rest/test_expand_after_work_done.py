"""`expand[]` paths are checked against the answer's schema, at the request's version, before
the handler runs; once a POST's work is done, expanding its answer fails nothing: what could
not be fetched stays an id. The gRPC side is faked."""

from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.testclient import TestClient

from remit.core.errors import ErrorKind, RemitError, not_found
from remit.core.jsonview import JsonObject, to_json
from remit.rest.app import Operation, build_app
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.errors import StripeError
from remit.rest.expand_paths import refuse_unexpandable
from remit.rest.params import Schema, StringList
from remit_api.payments.v1 import payments_pb2 as pb
from tests.support import resources
from tests.support.rest_facade import every_key_is_a_secret_key, faked_dependencies
from versions import LATEST_VERSION

KEY = "sk_test_" + "a" * 24
BEFORE_2022_11_15 = "2022-08-01"
BEFORE_2020_08_27 = "2020-03-02"
BEFORE_2025_03_31 = "2024-06-20"
BEFORE_2015_02_18 = "2014-01-31"


@dataclass
class FakePayments:
    charges_unavailable: bool = False

    async def GetPaymentMethod(  # noqa: N802 (the gRPC method name)
        self, request: pb.GetPaymentMethodRequest, **_: object
    ) -> pb.GetPaymentMethodResponse:
        if request.id == "pm_gone":
            raise not_found("payment_method", request.id, param="payment_method")
        raise RemitError(
            "The service is unavailable.", kind=ErrorKind.UNAVAILABLE, error_type="api_error"
        )

    async def ListChargesOfPaymentIntents(  # noqa: N802
        self, request: pb.ListChargesOfPaymentIntentsRequest, **_: object
    ) -> pb.ListChargesOfPaymentIntentsResponse:
        if self.charges_unavailable:
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


@dataclass
class Handled:
    calls: list[str] = field(default_factory=list)


HANDLED = Handled()


def _paying_with(method_id: str) -> Any:
    async def handler(context: ApiContext, deps: Dependencies) -> JsonObject:
        HANDLED.calls.append(method_id)
        intent = resources.payment_intent()
        intent.payment_method = method_id
        return to_json(intent)

    return handler


OPERATIONS = [
    # Versions before 2023-08-16 add payment_method_types=[card] to a create.
    Operation(
        "POST",
        "/v1/payment_intents",
        Schema({"payment_method_types": StringList()}),
        _paying_with("pm_gone"),
    ),
    Operation("POST", "/v1/payment_intents/{intent}/capture", Schema({}), _paying_with("pm_down")),
    Operation("GET", "/v1/payment_intents/{intent}", Schema({}), _paying_with("pm_down")),
]


def _client(payments: FakePayments | None = None) -> TestClient:
    deps = faked_dependencies(every_key_is_a_secret_key, payments=payments or FakePayments())
    return TestClient(build_app(deps, OPERATIONS))


def _post(client: TestClient, path: str, expand: str, version: str = LATEST_VERSION) -> Any:
    return client.post(
        path, data={"expand[]": expand}, auth=(KEY, ""), headers={"Stripe-Version": version}
    )


def test_a_path_the_answer_cannot_have_is_refused_before_the_handler_runs() -> None:
    HANDLED.calls.clear()
    response = _post(_client(), "/v1/payment_intents", "charges")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["message"]) == (
        "expand",
        "This property cannot be expanded (charges).",
    )
    assert HANDLED.calls == []


def test_a_path_of_the_requested_version_reaches_the_handler() -> None:
    HANDLED.calls.clear()
    response = _post(_client(), "/v1/payment_intents", "charges", BEFORE_2022_11_15)
    assert response.status_code == 200, response.text
    assert response.json()["charges"]["data"][0]["id"] == "ch_3Example"
    assert HANDLED.calls == ["pm_gone"]


@pytest.mark.parametrize(
    ("path", "method_id"),
    [("/v1/payment_intents", "pm_gone"), ("/v1/payment_intents/pi_1/capture", "pm_down")],
)
def test_an_object_that_cannot_be_fetched_after_the_work_stays_an_id(
    path: str, method_id: str
) -> None:
    """Neither a 404 (the payment method is gone) nor a 5xx (the core did not answer) may
    report a payment or a capture that has been made as failed."""
    response = _post(_client(), path, "payment_method")
    assert response.status_code == 200, response.text
    assert response.json()["payment_method"] == method_id


def test_related_lists_that_cannot_be_gathered_after_the_work_are_left_out() -> None:
    response = _post(
        _client(FakePayments(charges_unavailable=True)),
        "/v1/payment_intents",
        "customer",
        BEFORE_2022_11_15,
    )
    assert response.status_code == 200, response.text
    assert response.headers["stripe-version"] == BEFORE_2022_11_15
    assert "charges" not in response.json()


def test_a_read_that_cannot_expand_still_fails() -> None:
    """Nothing has happened: the client may ask again."""
    response = _client().get(
        "/v1/payment_intents/pi_1", params={"expand[]": "payment_method"}, auth=(KEY, "")
    )
    assert response.status_code >= 500


@pytest.mark.parametrize(
    ("method", "path", "expand", "version"),
    [
        ("POST", "/v1/payment_intents", "latest_charge.refunds.data.balance_transaction", None),
        ("POST", "/v1/payment_intents", "charges.data.balance_transaction", BEFORE_2022_11_15),
        ("POST", "/v1/payment_intents", "last_payment_error.payment_method.customer", None),
        ("GET", "/v1/charges/{charge}", "refunds", None),
        ("POST", "/v1/payment_intents", "latest_charge.refunds", None),
        ("POST", "/v1/payment_intents", "charges", BEFORE_2022_11_15),
        ("GET", "/v1/charges/{charge}", "refunds", BEFORE_2022_11_15),
        ("GET", "/v1/customers/{customer}", "sources", BEFORE_2020_08_27),
        ("GET", "/v1/payment_intents", "data.customer", None),
        ("GET", "/v1/charges/{charge}/refunds", "data.charge.payment_intent", None),
        ("GET", "/v1/balance_transactions/{id}", "source.payment_intent", None),
        ("GET", "/v1/balance_transactions/{id}", "source.original_payout", None),
        # Ids of objects remit does not serve, which it never fills: null, or left out.
        ("POST", "/v1/payment_intents", "on_behalf_of", None),
        ("POST", "/v1/payment_intents", "invoice", BEFORE_2025_03_31),
        ("GET", "/v1/charges", "data.application_fee", None),
        ("GET", "/v1/charges", "data.transfer", None),
        ("GET", "/v1/refunds/{refund}", "transfer_reversal", None),
        ("GET", "/v1/customers/{customer}", "default_source", None),
        ("GET", "/v1/customers/{customer}", "default_card", BEFORE_2015_02_18),
        ("GET", "/v1/payouts/{payout}", "destination", None),
        ("GET", "/v1/payment_intents/{intent}", "customer.test_clock", None),
        # A customer's lists, shown only when expanded since 2020-08-27 (always empty).
        ("GET", "/v1/customers/{customer}", "sources", None),
        ("GET", "/v1/customers", "data.tax_ids", None),
        ("POST", "/v1/payment_intents", "customer.subscriptions", None),
    ],
)
def test_paths_the_schema_has_are_accepted(
    method: str, path: str, expand: str, version: str | None
) -> None:
    refuse_unexpandable([expand], method, path, version or LATEST_VERSION)


@pytest.mark.parametrize(
    ("method", "path", "expand"),
    [
        ("POST", "/v1/payment_intents", "charges"),
        ("POST", "/v1/payment_intents", "amount"),
        ("POST", "/v1/payment_intents", "customer.no_such_field"),
        ("POST", "/v1/payment_intents", "latest_charge.amount.currency"),
        ("POST", "/v1/payment_intents/{intent}/capture", "latest_charge.refunds.data.amount"),
        ("GET", "/v1/payment_intents", "customer"),
        ("GET", "/v1/payment_intents", "data.no_such_field"),
        ("POST", "/v1/refunds", "metadata.order_id"),
        # Objects and arrays shown already, which expanding would not change: Stripe refuses
        # them as it refuses a number.
        ("POST", "/v1/payment_intents", "metadata"),
        ("POST", "/v1/payment_intents", "shipping"),
        ("POST", "/v1/payment_intents", "amount_details"),
        ("POST", "/v1/payment_intents", "next_action"),
        ("POST", "/v1/payment_intents", "latest_charge.outcome"),
        ("POST", "/v1/payment_intents", "latest_charge.payment_method_details.card"),
        ("POST", "/v1/payment_intents", "payment_method_types"),
        ("GET", "/v1/charges/{charge}", "payment_method_details"),
        ("GET", "/v1/customers/{customer}", "invoice_settings"),
        ("GET", "/v1/balance", "available"),
        # An id remit never fills names nothing to go on into; a field the version lacks
        # (`invoice`, since 2025-03-31) is no field at all.
        ("GET", "/v1/charges", "data.application_fee.amount"),
        ("GET", "/v1/customers/{customer}", "default_source.id"),
        ("GET", "/v1/customers/{customer}", "sources.data"),
        ("POST", "/v1/payment_intents", "invoice"),
        ("GET", "/v1/charges/{charge}", "invoice"),
        # Includable in Stripe, but remit has no Stripe Tax settings nor cash balance to show.
        ("GET", "/v1/customers/{customer}", "tax"),
        ("GET", "/v1/customers/{customer}", "cash_balance"),
        # Not an id of Stripe's, whatever it names.
        ("GET", "/v1/payment_intents/{intent}", "transfer_group"),
    ],
)
def test_paths_the_schema_lacks_are_refused(method: str, path: str, expand: str) -> None:
    with pytest.raises(StripeError) as refused:
        refuse_unexpandable([expand], method, path, LATEST_VERSION)
    assert refused.value.message == f"This property cannot be expanded ({expand})."
