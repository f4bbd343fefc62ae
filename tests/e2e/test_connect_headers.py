"""A platform sending `Stripe-Account` (or `Stripe-Context`) to act on a connected account is
refused with Stripe's 403, stripe-python's PermissionError: remit has no Connect, and serving
the request on the key's own account would move money on the wrong one. Nothing is made on
either account, and nothing is kept under the request's idempotency key for a retry without the
header to replay. Naming the key's own account changes nothing."""

import httpx
import pytest
import stripe

from tests.support.accounts import TestAccount, create_account
from tests.support.platform import RunningPlatform

CONNECT_HEADERS = ["Stripe-Account", "Stripe-Context"]


def _customers(platform: RunningPlatform, account: TestAccount) -> list[str]:
    response = httpx.get(
        f"{platform.api_base}/v1/customers",
        params={"limit": "100"},
        headers={"Authorization": f"Bearer {account.secret_key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return [customer["name"] for customer in response.json()["data"]]


def _create_customer(
    platform: RunningPlatform, account: TestAccount, name: str, headers: dict[str, str]
) -> httpx.Response:
    return httpx.post(
        f"{platform.api_base}/v1/customers",
        data={"name": name},
        headers={"Authorization": f"Bearer {account.secret_key}", **headers},
        timeout=30,
    )


def _naming(option: str, account_id: str) -> stripe.RequestOptions:
    """The request options of a call with `option` (the SDK's name for the header) naming
    `account_id`."""
    if option == "stripe_account":
        return {"stripe_account": account_id}
    return {"stripe_context": account_id}


@pytest.mark.parametrize("header", CONNECT_HEADERS)
def test_a_header_naming_another_account_is_a_403_that_makes_nothing_on_either(
    platform: RunningPlatform, account: TestAccount, header: str
) -> None:
    other = create_account(platform.core, token=platform.internal_token)
    response = _create_customer(platform, account, "Ada", {header: other.id})
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "remit does not support Connect" in error["message"]
    assert other.id in error["message"]
    assert "param" not in error
    assert _customers(platform, account) == []
    assert _customers(platform, other) == []


@pytest.mark.parametrize("header", CONNECT_HEADERS)
def test_the_refusal_is_not_replayed_to_the_same_key_sent_without_the_header(
    platform: RunningPlatform, account: TestAccount, header: str
) -> None:
    key = f"connect-{header}"
    refused = _create_customer(
        platform, account, "Ada", {header: "acct_elsewhere", "Idempotency-Key": key}
    )
    assert refused.status_code == 403, refused.text
    assert refused.headers["idempotency-key"] == key

    served = _create_customer(platform, account, "Ada", {"Idempotency-Key": key})
    assert served.status_code == 200, served.text
    assert "idempotent-replayed" not in served.headers
    assert served.json()["object"] == "customer"
    assert _customers(platform, account) == ["Ada"]


@pytest.mark.parametrize("option", ["stripe_account", "stripe_context"])
def test_the_sdks_request_option_naming_another_account_raises_permission_error(
    platform: RunningPlatform, account: TestAccount, client: stripe.StripeClient, option: str
) -> None:
    other = create_account(platform.core, token=platform.internal_token)
    options = _naming(option, other.id)
    with pytest.raises(stripe.PermissionError) as raised:
        client.v1.customers.create(params={"name": "Ada"}, options=options)
    assert raised.value.http_status == 403
    assert "remit does not support Connect" in str(raised.value)
    assert _customers(platform, account) == []
    assert _customers(platform, other) == []


@pytest.mark.parametrize("option", ["stripe_account", "stripe_context"])
def test_the_sdks_request_option_naming_the_keys_own_account_is_served(
    platform: RunningPlatform, account: TestAccount, client: stripe.StripeClient, option: str
) -> None:
    options = _naming(option, account.id)
    customer = client.v1.customers.create(params={"name": "Ada"}, options=options)
    assert customer.name == "Ada"
    assert client.v1.customers.retrieve(customer.id, options=options).id == customer.id
    assert _customers(platform, account) == ["Ada"]
