"""Who sends a request is settled before anything else about it: a request with no API key, or
a wrong one, is Stripe's 401 whatever else is wrong with it (a malformed Idempotency-Key, an
unknown Stripe-Version, parameters that do not decode). Only an authenticated request hears
about its own mistakes. The gRPC side is faked: nothing here gets as far as a handler."""

from typing import Any

import pytest
from starlette.testclient import TestClient

from remit.accounts.domain import Principal
from remit.core.jsonview import JsonObject
from remit.rest.app import Operation, build_app
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.params import Schema, String
from tests.support.rest_facade import SECRET_KEY_PRINCIPAL, faked_dependencies

KEY = "sk_test_" + "a" * 24
WRONG_KEY = "sk_test_" + "b" * 24

MALFORMED_KEYS = [
    pytest.param("x" * 256, id="too-long"),
    pytest.param("caf\u00e9".encode("latin-1"), id="not-ascii"),
]


async def _named(context: ApiContext, deps: Dependencies) -> JsonObject:
    return {"object": "customer", "id": "cus_1", "name": str(context.params.get("name"))}


@pytest.fixture
def client() -> TestClient:
    async def lookup(key: str) -> Principal | None:
        return SECRET_KEY_PRINCIPAL if key == KEY else None

    deps = faked_dependencies(lookup)
    operations = [
        Operation("POST", "/v1/customers", Schema({"name": String()}), _named),
        Operation("GET", "/v1/customers/{customer}", Schema({}), _named),
    ]
    return TestClient(build_app(deps, operations))


def _headers(authorization: str | None, **others: str | bytes) -> dict[str, Any]:
    headers: dict[str, Any] = {} if authorization is None else {"Authorization": authorization}
    headers.update({name.replace("_", "-"): value for name, value in others.items()})
    return headers


def _assert_unauthenticated(response: Any) -> None:
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "API key" in error["message"] or "API Key" in error["message"]
    assert response.headers["request-id"].startswith("req_")


@pytest.mark.parametrize("authorization", [None, f"Bearer {WRONG_KEY}", "Bearer"])
@pytest.mark.parametrize("idempotency_key", MALFORMED_KEYS)
def test_a_malformed_idempotency_key_without_a_good_api_key_is_a_401(
    client: TestClient, authorization: str | None, idempotency_key: str | bytes
) -> None:
    response = client.post(
        "/v1/customers",
        data={"name": "Ada"},
        headers=_headers(authorization, Idempotency_Key=idempotency_key),
    )
    _assert_unauthenticated(response)
    # Malformed, it is not echoed, as on any other answer.
    assert "idempotency-key" not in response.headers


@pytest.mark.parametrize("idempotency_key", MALFORMED_KEYS)
def test_a_malformed_idempotency_key_with_a_good_api_key_is_still_a_400(
    client: TestClient, idempotency_key: str | bytes
) -> None:
    response = client.post(
        "/v1/customers",
        data={"name": "Ada"},
        headers=_headers(f"Bearer {KEY}", Idempotency_Key=idempotency_key),
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "Idempotency-Key" in error["message"]
    assert "idempotency-key" not in response.headers


def test_a_well_formed_idempotency_key_is_echoed_on_the_401(client: TestClient) -> None:
    response = client.post(
        "/v1/customers",
        data={"name": "Ada"},
        headers=_headers(f"Bearer {WRONG_KEY}", Idempotency_Key="order-6735"),
    )
    _assert_unauthenticated(response)
    assert response.headers["idempotency-key"] == "order-6735"


def test_a_malformed_idempotency_key_on_a_get_is_still_ignored(client: TestClient) -> None:
    response = client.get(
        "/v1/customers/cus_1",
        headers=_headers(f"Bearer {KEY}", Idempotency_Key="x" * 256),
    )
    assert response.status_code == 200, response.text
    assert "idempotency-key" not in response.headers


@pytest.mark.parametrize("authorization", [None, f"Bearer {WRONG_KEY}"])
@pytest.mark.parametrize(
    "idempotency_key", [pytest.param("order-6735", id="good-key"), *MALFORMED_KEYS]
)
def test_an_unknown_stripe_version_without_a_good_api_key_is_a_401(
    client: TestClient, authorization: str | None, idempotency_key: str | bytes
) -> None:
    response = client.post(
        "/v1/customers",
        data={"name": "Ada"},
        headers=_headers(
            authorization, Stripe_Version="2099-01-01", Idempotency_Key=idempotency_key
        ),
    )
    _assert_unauthenticated(response)


def test_an_unknown_stripe_version_with_a_good_api_key_is_a_400(client: TestClient) -> None:
    response = client.post(
        "/v1/customers",
        data={"name": "Ada"},
        headers=_headers(f"Bearer {KEY}", Stripe_Version="2099-01-01"),
    )
    assert response.status_code == 400, response.text
    assert "Stripe-Version" in response.json()["error"]["message"]


@pytest.mark.parametrize("authorization", [None, f"Bearer {WRONG_KEY}"])
def test_parameters_that_do_not_decode_without_a_good_api_key_are_a_401(
    client: TestClient, authorization: str | None
) -> None:
    response = client.post(
        "/v1/customers",
        content=b"name=%ZZ&colour=blue",
        headers=_headers(authorization, Content_Type="application/x-www-form-urlencoded"),
    )
    _assert_unauthenticated(response)
