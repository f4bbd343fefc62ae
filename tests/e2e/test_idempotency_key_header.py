"""A malformed Idempotency-Key is the client's mistake: a Stripe-shaped 400 on a POST, ignored
on a GET, and never a 500 (which stripe-python would retry with the same key, forever)."""

from typing import Any

import httpx
import pytest

from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform


def _send(
    platform: RunningPlatform,
    account: TestAccount,
    method: str,
    path: str,
    key: str | bytes,
    body: str | None = None,
) -> httpx.Response:
    headers: dict[str, Any] = {
        "Authorization": f"Bearer {account.secret_key}",
        "Idempotency-Key": key,
    }
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    return httpx.request(
        method, platform.api_base + path, content=body, headers=headers, timeout=30
    )


def _customer_count(platform: RunningPlatform, account: TestAccount) -> int:
    response = httpx.get(
        f"{platform.api_base}/v1/customers",
        params={"limit": "100"},
        headers={"Authorization": f"Bearer {account.secret_key}"},
    )
    assert response.status_code == 200, response.text
    return len(response.json()["data"])


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("caf\u00e9".encode("latin-1"), id="latin-1"),
        pytest.param(b"tab\there", id="control-character"),
        pytest.param("x" * 256, id="too-long"),
    ],
)
def test_a_post_with_a_malformed_idempotency_key_is_a_400_and_creates_nothing(
    platform: RunningPlatform, account: TestAccount, key: str | bytes
) -> None:
    response = _send(platform, account, "POST", "/v1/customers", key, "name=Ada")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "Idempotency-Key" in error["message"]
    assert response.headers["request-id"].startswith("req_")
    assert "idempotency-key" not in response.headers
    assert _customer_count(platform, account) == 0


def test_a_get_with_a_malformed_idempotency_key_ignores_the_key(
    platform: RunningPlatform, account: TestAccount
) -> None:
    response = _send(platform, account, "GET", "/v1/customers", "caf\u00e9".encode("latin-1"))
    assert response.status_code == 200, response.text
    assert response.json()["object"] == "list"
    assert "idempotency-key" not in response.headers


def test_a_well_formed_idempotency_key_is_still_echoed(
    platform: RunningPlatform, account: TestAccount
) -> None:
    response = _send(platform, account, "POST", "/v1/customers", "cus-ascii-1", "name=Ada")
    assert response.status_code == 200, response.text
    assert response.headers["idempotency-key"] == "cus-ascii-1"


def test_a_publishable_keys_idempotency_keys_do_not_take_the_secret_keys(
    platform: RunningPlatform, account: TestAccount
) -> None:
    """The publishable key is public: whoever copies it from a web page can send any
    Idempotency-Key with it. The key the merchant later sends with the secret key is still its
    own, and each caller's retry replays its own answer."""
    key = "refund-order-123"

    def make_payment_method() -> httpx.Response:
        return httpx.post(
            f"{platform.api_base}/v1/payment_methods",
            data={"type": "card", "card[token]": "tok_visa"},
            headers={"Authorization": f"Bearer {account.publishable_key}", "Idempotency-Key": key},
            timeout=30,
        )

    public = make_payment_method()
    assert public.status_code == 200, public.text

    merchant = _send(platform, account, "POST", "/v1/customers", key, "name=Ada")
    assert merchant.status_code == 200, merchant.text
    assert merchant.headers.get("idempotent-replayed") != "true"
    assert _customer_count(platform, account) == 1

    public_again = make_payment_method()
    assert public_again.status_code == 200, public_again.text
    assert public_again.headers.get("idempotent-replayed") == "true"
    assert public_again.json()["id"] == public.json()["id"]
    merchant_again = _send(platform, account, "POST", "/v1/customers", key, "name=Ada")
    assert merchant_again.json()["id"] == merchant.json()["id"]
    assert _customer_count(platform, account) == 1
