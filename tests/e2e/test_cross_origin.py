"""A payment page in a browser calls the API with its publishable key, as it calls Stripe's:
the browser's preflight is answered, and every answer is one the page may read."""

import socket
from urllib.parse import urlsplit

import httpx
import pytest
import stripe

from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform

PAGE = "https://shop.example"
EXPOSED = {"request-id", "stripe-should-retry", "idempotent-replayed", "stripe-version"}


def _preflight(
    platform: RunningPlatform, path: str, method: str = "POST", headers: str = "authorization"
) -> httpx.Response:
    return httpx.options(
        platform.api_base + path,
        headers={
            "Origin": PAGE,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


def _listed(value: str | None) -> set[str]:
    return {part.strip().lower() for part in (value or "").split(",") if part.strip()}


def _readable_by_the_page(response: httpx.Response) -> None:
    assert response.headers.get("access-control-allow-origin") == "*"
    assert _listed(response.headers.get("access-control-expose-headers")) >= EXPOSED


def test_a_page_creates_a_payment_method_once_its_preflight_is_answered(
    platform: RunningPlatform, account: TestAccount
) -> None:
    preflight = _preflight(
        platform,
        "/v1/payment_methods",
        headers="authorization,content-type,idempotency-key,stripe-version,stripe-account",
    )
    # No key, no Request-Id of an operation: nothing is done, nothing is authenticated.
    assert (preflight.status_code, preflight.content) == (204, b"")
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert _listed(preflight.headers["access-control-allow-methods"]) == {"get", "post"}
    assert {
        "authorization", "content-type", "idempotency-key", "stripe-version", "stripe-account",
    } <= _listed(preflight.headers["access-control-allow-headers"])  # fmt: skip
    assert int(preflight.headers["access-control-max-age"]) > 0
    assert "access-control-allow-credentials" not in preflight.headers

    created = httpx.post(
        platform.api_base + "/v1/payment_methods",
        headers={"Authorization": f"Bearer {account.publishable_key}", "Origin": PAGE},
        data={"type": "card", "card[token]": "tok_visa"},
    )
    assert created.status_code == 200, created.text
    _readable_by_the_page(created)


def test_a_page_retrieves_and_confirms_its_intent_with_the_client_secret(
    platform: RunningPlatform, account: TestAccount, client: stripe.StripeClient
) -> None:
    intent = client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    one = f"/v1/payment_intents/{intent.id}"
    retrieve = _preflight(platform, one, method="GET")
    assert retrieve.status_code == 204
    assert _listed(retrieve.headers["access-control-allow-methods"]) == {"get", "post"}
    confirm = _preflight(platform, one + "/confirm")
    assert confirm.status_code == 204
    assert _listed(confirm.headers["access-control-allow-methods"]) == {"post"}

    headers = {"Authorization": f"Bearer {account.publishable_key}", "Origin": PAGE}
    secret = {"client_secret": str(intent.client_secret)}
    retrieved = httpx.get(platform.api_base + one, params=secret, headers=headers)
    assert retrieved.status_code == 200, retrieved.text
    _readable_by_the_page(retrieved)
    confirmed = httpx.post(
        platform.api_base + one + "/confirm",
        headers=headers,
        data={
            **secret,
            "payment_method": "pm_card_visa_chargeDeclined",
            "return_url": f"{PAGE}/return",
        },
    )
    # A decline: the page must read the error to show it.
    assert confirmed.status_code == 402, confirmed.text
    _readable_by_the_page(confirmed)
    assert confirmed.json()["error"]["code"] == "card_declined"


def test_preflights_are_never_held_back_by_the_rate_limits(platform: RunningPlatform) -> None:
    """A page asks before each new path; whoever asks, however often, is answered."""
    answers = {_preflight(platform, "/v1/tokens").status_code for _ in range(60)}
    assert answers == {204}


@pytest.mark.parametrize(
    "path", ["/v1/no_such_thing", "/v1/payment_intents/search", "/v1/payment_methods/"]
)
def test_a_preflight_of_a_path_not_served_is_the_404_of_any_unserved_request(
    platform: RunningPlatform, path: str
) -> None:
    refused = _preflight(platform, path)
    assert refused.status_code == 404
    assert refused.json()["error"]["type"] == "invalid_request_error"
    assert "access-control-allow-methods" not in refused.headers
    _readable_by_the_page(refused)


def test_refusals_are_readable_by_the_page_too(platform: RunningPlatform) -> None:
    unauthenticated = httpx.post(
        platform.api_base + "/v1/payment_methods", headers={"Origin": PAGE}
    )
    assert unauthenticated.status_code == 401
    _readable_by_the_page(unauthenticated)
    # Refused by the HTTP parser itself, before the app: a control character in a header.
    address = urlsplit(platform.api_base)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(
            b"GET /v1/balance HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a\x01b\r\n\r\n"
        )
        head = connection.recv(65536).partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 400")
    assert b"\r\naccess-control-allow-origin: *\r\n" in head + b"\r\n"
