"""`POST /v1/tokens` takes only what Stripe's `card` hash takes. It has no `metadata` (a
token has none), so `card[metadata]` is refused as any name Stripe would not know is: 400
`parameter_unknown` naming it, before anything reaches the vault. The gRPC side is faked:
nothing here gets as far as the handler."""

import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from remit.accounts.domain import KeyKind, Principal
from remit.rest.app import build_app
from remit.rest.routes import all_operations
from tests.support.rest_facade import faked_dependencies
from versions import LATEST_VERSION

SECRET_KEY = "sk_test_" + "a" * 24
PUBLISHABLE_KEY = "pk_test_" + "a" * 24
CARD = {
    "card[number]": "4242424242424242",
    "card[exp_month]": "12",
    "card[exp_year]": "2034",
    "card[cvc]": "123",
}


@pytest.fixture
def client() -> TestClient:
    async def lookup(key: str) -> Principal | None:
        kind = KeyKind.PUBLISHABLE if key.startswith("pk_") else KeyKind.SECRET
        return Principal("acct_1", "key_1", kind, False, LATEST_VERSION, True)

    deps = faked_dependencies(lookup)
    return TestClient(build_app(deps, all_operations()))


def _assert_unknown(response: Any, param: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "parameter_unknown",
        param,
    )
    assert "4242424242424242" not in response.text


@pytest.mark.parametrize("key", [SECRET_KEY, PUBLISHABLE_KEY])
@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"card[metadata][order]": "6735"}, "card[metadata]"),
        ({"card[metadata]": ""}, "card[metadata]"),
        ({"card[colour]": "blue"}, "card[colour]"),
        ({"card[address][city]": "Paris"}, "card[address]"),
        ({"card[billing_details][name]": "Jenny"}, "card[billing_details]"),
    ],
)
def test_a_card_parameter_stripe_does_not_take_is_unknown(
    client: TestClient, key: str, extra: dict[str, str], param: str
) -> None:
    response = client.post("/v1/tokens", data={**CARD, **extra}, auth=(key, ""))
    _assert_unknown(response, param)


def test_card_metadata_in_a_json_body_is_unknown_too(client: TestClient) -> None:
    card = {key[5:-1]: value for key, value in CARD.items()}
    response = client.post(
        "/v1/tokens",
        content=json.dumps({"card": {**card, "metadata": {"order": "6735"}}}),
        headers={"Content-Type": "application/json"},
        auth=(PUBLISHABLE_KEY, ""),
    )
    _assert_unknown(response, "card[metadata]")


@pytest.mark.parametrize(
    ("typed", "last4"),
    [
        ("4242424242424242 123", "4242"),
        ("4242 - 4242 - 4242 - 4242", "4242"),
        ("5555555555554444-12", "4444"),
        ("42424242424242421234", "4242"),
    ],
)
def test_a_card_number_in_the_wrong_field_is_never_echoed_however_typed(
    client: TestClient, typed: str, last4: str
) -> None:
    """The refusal quotes the value, and the facade masks what it quotes: with the CVC or
    whatever else was typed in the same run of digits."""
    response = client.post(
        "/v1/tokens", data={**CARD, "card[exp_month]": typed}, auth=(PUBLISHABLE_KEY, "")
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["message"]) == (
        "card[exp_month]",
        f"Invalid integer: [card ****{last4}]",
    )


def test_a_card_number_as_a_parameter_name_is_never_echoed_however_typed(
    client: TestClient,
) -> None:
    response = client.post(
        "/v1/tokens", data={**CARD, "card[4242424242424242 123]": "x"}, auth=(SECRET_KEY, "")
    )
    _assert_unknown(response, "card[[card ****4242]]")
    assert "123]" not in response.text


def test_a_long_number_that_is_no_card_number_is_echoed_as_it_is(client: TestClient) -> None:
    response = client.post(
        "/v1/tokens",
        data={**CARD, "card[exp_month]": "45678901234567890123"},
        auth=(PUBLISHABLE_KEY, ""),
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"] == "Invalid integer: 45678901234567890123"
