"""A publishable key with a PaymentIntent's client_secret may retrieve and confirm that intent,
as Stripe.js does after collecting a card (shared reference stripe-wire.md, §1); without the
secret, or for anything else an intent offers, it stays refused."""

from collections.abc import Iterator

import grpc
import httpx
import pytest
import stripe

from remit.grpcutil.internal_auth import internal_sync_channel
from remit_api.payments.v1 import payments_pb2, payments_pb2_grpc
from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform


def _publishable_client(platform: RunningPlatform, account: TestAccount) -> stripe.StripeClient:
    return stripe.StripeClient(
        account.publishable_key,
        base_addresses={"api": platform.api_base},
        max_network_retries=0,
    )


def _new_intent(client: stripe.StripeClient) -> stripe.PaymentIntent:
    return client.v1.payment_intents.create(params={"amount": 500, "currency": "usd"})


def test_a_publishable_key_with_the_client_secret_retrieves_its_payment_intent(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    created = _new_intent(client)
    assert created.client_secret is not None
    retrieved = _publishable_client(platform, account).v1.payment_intents.retrieve(
        created.id, params={"client_secret": created.client_secret}
    )
    assert (retrieved.id, retrieved.status) == (created.id, "requires_payment_method")


def test_a_publishable_key_with_the_client_secret_confirms_its_payment_intent(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    """Sent as Stripe.js sends it: stripe-python, a server library, has no confirm params
    with a client secret."""
    created = _new_intent(client)
    assert created.client_secret is not None
    response = httpx.post(
        f"{platform.api_base}/v1/payment_intents/{created.id}/confirm",
        data={
            "client_secret": created.client_secret,
            "payment_method": "pm_card_visa",
            "return_url": "https://example.com/back",
        },
        headers={"Authorization": f"Bearer {account.publishable_key}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"
    assert client.v1.payment_intents.retrieve(created.id).status == "succeeded"


def test_a_publishable_key_without_the_client_secret_is_refused_and_changes_nothing(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    created = _new_intent(client)
    publishable = _publishable_client(platform, account)
    with pytest.raises(stripe.PermissionError) as retrieving:
        publishable.v1.payment_intents.retrieve(created.id)
    assert "client_secret" in str(retrieving.value.user_message)
    with pytest.raises(stripe.PermissionError):
        publishable.v1.payment_intents.confirm(
            created.id,
            params={"payment_method": "pm_card_visa", "return_url": "https://example.com/back"},
        )
    assert client.v1.payment_intents.retrieve(created.id).status == "requires_payment_method"


def test_a_publishable_key_with_another_intents_client_secret_finds_nothing(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    wanted, other = _new_intent(client), _new_intent(client)
    assert other.client_secret is not None
    with pytest.raises(stripe.InvalidRequestError) as raised:
        _publishable_client(platform, account).v1.payment_intents.retrieve(
            wanted.id, params={"client_secret": other.client_secret}
        )
    assert raised.value.http_status == 404


def test_a_publishable_key_may_not_update_list_or_cancel_intents_even_with_the_secret(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    created = _new_intent(client)
    headers = {"Authorization": f"Bearer {account.publishable_key}"}
    base = f"{platform.api_base}/v1/payment_intents"
    secret = {"client_secret": created.client_secret or ""}
    for response in (
        httpx.post(f"{base}/{created.id}", data={**secret, "description": "x"}, headers=headers),
        httpx.get(base, params=secret, headers=headers),
        httpx.post(f"{base}/{created.id}/cancel", data=secret, headers=headers),
    ):
        assert response.status_code == 403, response.text
        assert response.json()["error"]["type"] == "invalid_request_error"


def _with_merchant_details(client: stripe.StripeClient) -> stripe.PaymentIntent:
    customer = client.v1.customers.create(params={"email": "buyer@example.com"})
    return client.v1.payment_intents.create(
        params={
            "amount": 700,
            "currency": "usd",
            "customer": customer.id,
            "metadata": {"order": "A-17"},
            "statement_descriptor_suffix": "SHOP",
        }
    )


def test_a_publishable_key_sees_only_the_public_properties_of_the_intent(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    """A publishable key is public: what the merchant keeps to itself (metadata, the
    customer, descriptors, amounts captured) stays out, on retrieve, confirm and a decline."""
    created = _with_merchant_details(client)
    headers = {"Authorization": f"Bearer {account.publishable_key}"}
    url = f"{platform.api_base}/v1/payment_intents/{created.id}"
    secret = {"client_secret": created.client_secret or ""}
    private = {"metadata", "customer", "statement_descriptor_suffix", "amount_received"}

    retrieved = httpx.get(url, params=secret, headers=headers).json()
    assert (retrieved["id"], retrieved["amount"], retrieved["status"]) == (
        created.id, 700, "requires_payment_method",
    )  # fmt: skip
    assert retrieved["client_secret"] == created.client_secret
    assert private.isdisjoint(retrieved)

    declined = httpx.post(
        f"{url}/confirm",
        data={**secret, "payment_method": "pm_card_visa_chargeDeclined",
              "return_url": "https://example.com/back"},
        headers=headers,
    )  # fmt: skip
    assert declined.status_code == 402, declined.text
    shown = declined.json()["error"]["payment_intent"]
    assert shown["last_payment_error"]["code"] == "card_declined"
    assert private.isdisjoint(shown)

    confirmed = httpx.post(
        f"{url}/confirm",
        data={**secret, "payment_method": "pm_card_visa", "expand[]": "payment_method",
              "return_url": "https://example.com/back"},
        headers=headers,
    )  # fmt: skip
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    assert body["status"] == "succeeded"
    assert body["payment_method"]["card"]["last4"] == "4242"
    assert private.isdisjoint(body)
    # The secret key still sees everything.
    full = client.v1.payment_intents.retrieve(created.id)
    assert full.metadata.to_dict() == {"order": "A-17"}
    assert full.customer == created.customer


def test_a_publishable_key_may_expand_only_the_payment_method(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    created = _with_merchant_details(client)
    response = httpx.get(
        f"{platform.api_base}/v1/payment_intents/{created.id}",
        params={"client_secret": created.client_secret or "", "expand[]": "customer"},
        headers={"Authorization": f"Bearer {account.publishable_key}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "expand"


def test_a_publishable_key_may_not_change_what_the_merchant_decided(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    """The merchant holds funds with a manual capture, and asked for the card to be saved; the
    browser, which holds the client secret, may not turn that into an immediate capture or an
    off-session payment, nor undo the saving."""
    held = client.v1.payment_intents.create(
        params={
            "amount": 900,
            "currency": "usd",
            "capture_method": "manual",
            "setup_future_usage": "off_session",
        }
    )
    for extra in ({"capture_method": "automatic"}, {"off_session": "true"},
                  {"setup_future_usage": ""}):  # fmt: skip
        response = httpx.post(
            f"{platform.api_base}/v1/payment_intents/{held.id}/confirm",
            data={
                "client_secret": held.client_secret or "",
                "payment_method": "pm_card_visa",
                "return_url": "https://example.com/back",
                **extra,
            },
            headers={"Authorization": f"Bearer {account.publishable_key}"},
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == next(iter(extra))
    assert client.v1.payment_intents.retrieve(held.id).status == "requires_payment_method"


def test_a_decline_at_an_old_version_shows_a_publishable_key_only_the_public_intent(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    """Older versions add lists back to an intent (its charges, its invoice); none of it shows
    to a publishable key, as on a retrieve."""
    created = _with_merchant_details(client)
    declined = httpx.post(
        f"{platform.api_base}/v1/payment_intents/{created.id}/confirm",
        data={
            "client_secret": created.client_secret or "",
            "payment_method": "pm_card_visa_chargeDeclined",
            "return_url": "https://example.com/back",
        },
        headers={
            "Authorization": f"Bearer {account.publishable_key}",
            "Stripe-Version": "2019-02-11",
        },
    )
    assert declined.status_code == 402, declined.text
    shown = declined.json()["error"]["payment_intent"]
    assert shown["last_payment_error"]["code"] == "card_declined"
    assert {"charges", "invoice", "metadata", "customer"}.isdisjoint(shown)


def test_a_payment_page_may_ask_for_the_card_to_be_saved(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    """Stripe.js saves a card during a payment with setup_future_usage on the confirmation."""
    customer = client.v1.customers.create(params={"email": "saver@example.com"})
    created = client.v1.payment_intents.create(
        params={"amount": 600, "currency": "usd", "customer": customer.id}
    )
    response = httpx.post(
        f"{platform.api_base}/v1/payment_intents/{created.id}/confirm",
        data={"client_secret": created.client_secret or "", "payment_method": "pm_card_visa",
              "return_url": "https://example.com/back", "setup_future_usage": "off_session"},
        headers={"Authorization": f"Bearer {account.publishable_key}"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["setup_future_usage"] == "off_session"
    saved = client.v1.customers.payment_methods.list(customer.id)
    assert [method.card.last4 for method in saved.data if method.card] == ["4242"]


def test_a_publishable_key_may_not_confirm_an_intent_the_merchant_confirms_itself(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    """confirmation_method=manual: the merchant's server confirms, with its secret key."""
    manual = client.v1.payment_intents.create(
        params={"amount": 700, "currency": "usd", "confirmation_method": "manual"}
    )
    response = httpx.post(
        f"{platform.api_base}/v1/payment_intents/{manual.id}/confirm",
        data={"client_secret": manual.client_secret or "", "payment_method": "pm_card_visa",
              "return_url": "https://example.com/back"},
        headers={"Authorization": f"Bearer {account.publishable_key}"},
    )  # fmt: skip
    assert response.status_code == 400, response.text
    assert "confirmation_method is manual" in response.json()["error"]["message"]
    assert client.v1.payment_intents.retrieve(manual.id).status == "requires_payment_method"
    confirmed = client.v1.payment_intents.confirm(
        manual.id,
        params={"payment_method": "pm_card_visa", "return_url": "https://example.com/back"},
    )
    assert confirmed.status == "succeeded"


def _page_confirms(
    platform: RunningPlatform, account: TestAccount, intent: stripe.PaymentIntent, usage: str
) -> httpx.Response:
    return httpx.post(
        f"{platform.api_base}/v1/payment_intents/{intent.id}/confirm",
        data={"client_secret": intent.client_secret or "", "payment_method": "pm_card_visa",
              "return_url": "https://example.com/back", "setup_future_usage": usage},
        headers={"Authorization": f"Bearer {account.publishable_key}"},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("merchants", "pages", "accepted"),
    [
        ("on_session", "off_session", True),
        ("off_session", "off_session", True),
        ("on_session", "on_session", True),
        ("off_session", "on_session", False),
    ],
)
def test_a_payment_page_may_only_raise_setup_future_usage_to_off_session(
    client: stripe.StripeClient,
    platform: RunningPlatform,
    account: TestAccount,
    merchants: str,
    pages: str,
    accepted: bool,
) -> None:
    customer = client.v1.customers.create()
    created = client.v1.payment_intents.create(
        params={"amount": 600, "currency": "usd", "customer": customer.id,
                "setup_future_usage": merchants}
    )  # fmt: skip
    response = _page_confirms(platform, account, created, pages)
    if accepted:
        assert response.status_code == 200, response.text
        assert response.json()["setup_future_usage"] == pages
        return
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "setup_future_usage")
    after = client.v1.payment_intents.retrieve(created.id)
    assert (after.status, after.setup_future_usage) == ("requires_payment_method", merchants)


@pytest.fixture
def payments_stub(
    platform: RunningPlatform,
) -> Iterator[payments_pb2_grpc.PaymentsServiceStub]:
    with internal_sync_channel(platform.core.target, platform.internal_access) as channel:
        yield payments_pb2_grpc.PaymentsServiceStub(channel)


def test_grpc_refuses_a_client_secret_confirmation_lowering_setup_future_usage(
    payments_stub: payments_pb2_grpc.PaymentsServiceStub, account: TestAccount
) -> None:
    metadata = (("remit-account-id", account.id),)
    created = payments_stub.CreatePaymentIntent(
        payments_pb2.CreatePaymentIntentRequest(
            amount=600, currency="usd",
            setup_future_usage=payments_pb2.SETUP_FUTURE_USAGE_OFF_SESSION,
        ),
        metadata=metadata,
        timeout=10,
    ).payment_intent  # fmt: skip
    confirm = payments_pb2.ConfirmPaymentIntentRequest(
        id=created.id, client_secret=created.client_secret, payment_method="pm_card_visa",
        return_url="https://example.com/back",
        setup_future_usage=payments_pb2.SETUP_FUTURE_USAGE_ON_SESSION,
    )  # fmt: skip
    with pytest.raises(grpc.RpcError) as raised:
        payments_stub.ConfirmPaymentIntent(confirm, metadata=metadata, timeout=10)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    confirm.ClearField("client_secret")  # the merchant itself may
    confirmed = payments_stub.ConfirmPaymentIntent(confirm, metadata=metadata, timeout=30)
    assert confirmed.payment_intent.setup_future_usage == payments_pb2.SETUP_FUTURE_USAGE_ON_SESSION


def _saved_card_that_declines(client: stripe.StripeClient) -> tuple[str, str]:
    """A customer and a card saved to it, with the merchant's metadata, which attaches but
    declines every charge: (customer id, payment method id)."""
    customer = client.v1.customers.create(params={"email": "saved@example.com"})
    method = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"token": "tok_chargeCustomerFail"},
            "metadata": {"merchant_note": "fraud-watch"},
        }
    )
    client.v1.payment_methods.attach(method.id, params={"customer": customer.id})
    return customer.id, method.id


def _assert_public_payment_method(shown: object, method_id: str) -> None:
    assert isinstance(shown, dict)
    assert shown["id"] == method_id
    assert {"customer", "customer_account", "metadata"}.isdisjoint(shown)
    assert "fingerprint" not in shown["card"]
    assert shown["card"]["last4"] == "0341"


def test_a_publishable_key_sees_the_payment_method_without_the_merchants_details(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    """The card a payment used shows (expanded, or in the last error) as a payment page needs
    it: not whom the merchant saved it to, the merchant's notes on it, nor its fingerprint."""
    customer, method = _saved_card_that_declines(client)
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "customer": customer,
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
        }
    )
    with pytest.raises(stripe.CardError):
        client.v1.payment_intents.confirm(intent.id, params={"payment_method": method})
    publishable = _publishable_client(platform, account)
    secret = intent.client_secret or ""

    seen = publishable.v1.payment_intents.retrieve(
        intent.id, params={"client_secret": secret}
    ).to_dict()
    _assert_public_payment_method(seen["last_payment_error"]["payment_method"], method)

    client.v1.payment_intents.update(intent.id, params={"payment_method": method})
    seen = publishable.v1.payment_intents.retrieve(
        intent.id, params={"client_secret": secret, "expand": ["payment_method"]}
    ).to_dict()
    _assert_public_payment_method(seen["payment_method"], method)
    # The secret key still sees them.
    full = client.v1.payment_methods.retrieve(method)
    assert full.customer == customer
    assert full.metadata is not None
    assert full.metadata.to_dict() == {"merchant_note": "fraud-watch"}


def test_a_decline_shows_a_publishable_key_the_payment_method_without_the_merchants_details(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    customer, method = _saved_card_that_declines(client)
    intent = client.v1.payment_intents.create(
        params={"amount": 2000, "currency": "usd", "customer": customer}
    )
    declined = httpx.post(
        f"{platform.api_base}/v1/payment_intents/{intent.id}/confirm",
        data={
            "client_secret": intent.client_secret or "",
            "payment_method": method,
            "return_url": "https://example.com/back",
        },
        headers={"Authorization": f"Bearer {account.publishable_key}"},
    )
    assert declined.status_code == 402, declined.text
    error = declined.json()["error"]
    _assert_public_payment_method(error["payment_method"], method)
    _assert_public_payment_method(
        error["payment_intent"]["last_payment_error"]["payment_method"], method
    )
