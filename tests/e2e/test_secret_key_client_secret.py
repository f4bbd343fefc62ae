"""A secret key needs no client_secret, but one it sends must be the intent's: Stripe refuses
another intent's (400, param client_secret) rather than ignore it, on retrieve and confirm. A
publishable key's mismatch stays a 404, as if the intent did not exist."""

from typing import Any, cast

import httpx
import pytest
import stripe

from remit.rest.client_secrets import MISMATCH_MESSAGE
from tests.support.accounts import TestAccount, create_account
from tests.support.platform import RunningPlatform

RETURN_URL = "https://example.com/back"


def _new_intent(client: stripe.StripeClient) -> stripe.PaymentIntent:
    return client.v1.payment_intents.create(params={"amount": 500, "currency": "usd"})


def _secret_of(intent: stripe.PaymentIntent) -> str:
    assert intent.client_secret is not None
    return intent.client_secret


def _other_accounts_intent(platform: RunningPlatform) -> stripe.PaymentIntent:
    other = create_account(platform.core, token=platform.internal_token)
    other_client = stripe.StripeClient(
        other.secret_key, base_addresses={"api": platform.api_base}, max_network_retries=0
    )
    return _new_intent(other_client)


def _assert_mismatch(error: dict[str, Any]) -> None:
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "client_secret"
    assert error["message"] == MISMATCH_MESSAGE


def test_the_sdk_confirming_with_another_intents_client_secret_is_refused(
    client: stripe.StripeClient,
) -> None:
    wanted, other = _new_intent(client), _new_intent(client)
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.confirm(
            wanted.id,
            params=cast(
                Any,
                {
                    "client_secret": _secret_of(other),
                    "payment_method": "pm_card_visa",
                    "return_url": RETURN_URL,
                },
            ),
        )
    assert raised.value.http_status == 400
    assert raised.value.param == "client_secret"
    assert raised.value.user_message == MISMATCH_MESSAGE
    for unchanged in (wanted, other):
        assert client.v1.payment_intents.retrieve(unchanged.id).status == (
            "requires_payment_method"
        )


def test_the_sdk_retrieving_with_another_intents_client_secret_is_refused(
    client: stripe.StripeClient,
) -> None:
    wanted, other = _new_intent(client), _new_intent(client)
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.retrieve(wanted.id, params={"client_secret": _secret_of(other)})
    assert (raised.value.http_status, raised.value.param) == (400, "client_secret")
    assert raised.value.user_message == MISMATCH_MESSAGE


def test_the_sdk_with_the_intents_own_client_secret_retrieves_and_confirms(
    client: stripe.StripeClient,
) -> None:
    created = _new_intent(client)
    secret = _secret_of(created)
    retrieved = client.v1.payment_intents.retrieve(created.id, params={"client_secret": secret})
    assert retrieved.id == created.id
    # A secret key sees the whole intent, as without the client secret.
    assert {"metadata", "amount_received"} <= retrieved.to_dict().keys()
    confirmed = client.v1.payment_intents.confirm(
        created.id,
        params=cast(
            Any,
            {"client_secret": secret, "payment_method": "pm_card_visa", "return_url": RETURN_URL},
        ),
    )
    assert confirmed.status == "succeeded"


def test_another_accounts_client_secret_is_refused_and_the_refusal_is_not_kept_under_its_key(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    wanted, foreign = _new_intent(client), _other_accounts_intent(platform)
    url = f"{platform.api_base}/v1/payment_intents/{wanted.id}"
    headers = {"Authorization": f"Bearer {account.secret_key}"}
    paying = {"payment_method": "pm_card_visa", "return_url": RETURN_URL}

    retrieved = httpx.get(url, params={"client_secret": _secret_of(foreign)}, headers=headers)
    assert retrieved.status_code == 400, retrieved.text
    _assert_mismatch(retrieved.json()["error"])

    keyed = {**headers, "Idempotency-Key": "order-41"}
    refused = httpx.post(
        f"{url}/confirm",
        data={**paying, "client_secret": _secret_of(foreign)},
        headers=keyed,
        timeout=30,
    )
    assert refused.status_code == 400, refused.text
    _assert_mismatch(refused.json()["error"])
    assert "idempotent-replayed" not in refused.headers

    # The key was not spent on the refusal: the corrected request, under it, is carried out.
    confirmed = httpx.post(
        f"{url}/confirm",
        data={**paying, "client_secret": _secret_of(wanted)},
        headers=keyed,
        timeout=30,
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "succeeded"


def test_a_client_secret_for_a_missing_intent_is_still_no_such_intent(
    platform: RunningPlatform, account: TestAccount
) -> None:
    response = httpx.post(
        f"{platform.api_base}/v1/payment_intents/pi_missing/confirm",
        data={"client_secret": "pi_missing_secret_x", "payment_method": "pm_card_visa"},
        headers={"Authorization": f"Bearer {account.secret_key}"},
        timeout=30,
    )
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "resource_missing"


def test_a_publishable_keys_mismatch_still_finds_nothing(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    wanted, other = _new_intent(client), _new_intent(client)
    url = f"{platform.api_base}/v1/payment_intents/{wanted.id}"
    headers = {"Authorization": f"Bearer {account.publishable_key}"}
    secret = {"client_secret": _secret_of(other)}
    retrieved = httpx.get(url, params=secret, headers=headers)
    confirmed = httpx.post(
        f"{url}/confirm",
        data={**secret, "payment_method": "pm_card_visa", "return_url": RETURN_URL},
        headers=headers,
        timeout=30,
    )
    for response in (retrieved, confirmed):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "resource_missing"
    assert client.v1.payment_intents.retrieve(wanted.id).status == "requires_payment_method"
