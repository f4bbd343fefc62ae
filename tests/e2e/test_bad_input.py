"""Every kind of bad input gets a precise Stripe-shaped error, and nothing is written."""

import grpc
import httpx
import pytest
import stripe

from remit.grpcutil.internal_auth import InternalAccess, internal_sync_channel
from remit_api.accounts.v1 import accounts_pb2, accounts_pb2_grpc
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2, payments_pb2_grpc
from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform


def _intent_count(platform: RunningPlatform, account: TestAccount) -> int:
    response = httpx.get(
        f"{platform.api_base}/v1/payment_intents",
        params={"limit": "100"},
        headers={"Authorization": f"Bearer {account.secret_key}"},
    )
    assert response.status_code == 200
    return len(response.json()["data"])


def _post(platform: RunningPlatform, key: str | None, body: str | dict[str, str]) -> httpx.Response:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    content = body if isinstance(body, str) else None
    data = body if isinstance(body, dict) else None
    return httpx.post(
        f"{platform.api_base}/v1/payment_intents", headers=headers, content=content, data=data
    )


def test_a_missing_key_is_a_401_that_says_how_to_authenticate(platform: RunningPlatform) -> None:
    response = _post(platform, None, {"amount": "100", "currency": "usd"})
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "You did not provide an API key" in error["message"]
    assert response.headers["request-id"].startswith("req_")


def test_an_invalid_key_is_a_401_that_masks_the_key(platform: RunningPlatform) -> None:
    bogus = "sk_test_thisKeyDoesNotExist0000000000abcd"
    response = _post(platform, bogus, {"amount": "100", "currency": "usd"})
    assert response.status_code == 401
    message = response.json()["error"]["message"]
    assert bogus not in message
    assert message.endswith("abcd")


def test_a_revoked_key_is_a_401_that_says_it_expired(
    platform: RunningPlatform, account: TestAccount
) -> None:
    """A key that was revoked is told apart from one that never existed, as Stripe tells an
    expired key apart: `api_key_expired`, the key masked. stripe-python raises its
    AuthenticationError carrying that error."""
    with internal_sync_channel(platform.core.target, platform.internal_access) as channel:
        keys = accounts_pb2_grpc.AccountsServiceStub(channel)
        created = keys.CreateApiKey(
            accounts_pb2.CreateApiKeyRequest(
                account_id=account.id, kind=accounts_pb2.API_KEY_KIND_SECRET
            )
        )
        keys.RevokeApiKey(
            accounts_pb2.RevokeApiKeyRequest(account_id=account.id, key_id=created.api_key.id)
        )
    revoked = created.plaintext_key
    response = _post(platform, revoked, {"amount": "100", "currency": "usd"})
    assert response.status_code == 401
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "api_key_expired")
    assert error["message"].startswith("Expired API Key provided")
    assert revoked not in error["message"]
    assert error["message"].endswith(revoked[-4:])
    client = stripe.StripeClient(
        revoked, base_addresses={"api": platform.api_base}, max_network_retries=0
    )
    with pytest.raises(stripe.AuthenticationError) as raised:
        client.v1.payment_intents.list()
    assert raised.value.error is not None
    assert raised.value.error.code == "api_key_expired"
    # A key that never existed is still only invalid.
    unknown = _post(platform, "sk_test_neverIssued00000000000000000000wxyz", {"amount": "1"})
    assert unknown.json()["error"].get("code") is None


def test_the_sdk_raises_authentication_error_for_an_invalid_key(
    platform: RunningPlatform,
) -> None:
    client = stripe.StripeClient(
        "sk_test_nope0000000000000000000000000000",
        base_addresses={"api": platform.api_base},
        max_network_retries=0,
    )
    with pytest.raises(stripe.AuthenticationError):
        client.v1.payment_intents.create(params={"amount": 100, "currency": "usd"})


def test_http_basic_auth_with_the_key_as_user_name_works(
    platform: RunningPlatform, account: TestAccount
) -> None:
    response = httpx.post(
        f"{platform.api_base}/v1/payment_intents",
        data={"amount": "100", "currency": "usd"},
        auth=(account.secret_key, ""),
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ("amount=abc&currency=usd", 400, "parameter_invalid_integer", "amount"),
        ("amount=-5&currency=usd", 400, "parameter_invalid_integer", "amount"),
        ("amount=1.5&currency=usd", 400, "parameter_invalid_integer", "amount"),
        ("amount=100&currency=xyz", 400, None, "currency"),
        ("amount=100&currency=usd&colour=blue", 400, "parameter_unknown", "colour"),
        ("currency=usd", 400, "parameter_missing", "amount"),
        ("amount=100&currency=usd&metadata[a]=1&metadata=x", 400, None, "metadata"),
        ("amount=100&currency=usd&expand[0=x", 400, None, None),
        ("amount=100&amount=200&currency=usd", 400, None, "amount"),
        # stripe-python's encoding of metadata={"": "v"}: an empty key, not the key "0".
        ("amount=100&currency=usd&metadata[]=v", 400, "parameter_invalid", "metadata"),
    ],
)
def test_bad_parameters_are_precise_400s_and_write_nothing(
    platform: RunningPlatform,
    account: TestAccount,
    body: str,
    status: int,
    code: str | None,
    param: str | None,
) -> None:
    before = _intent_count(platform, account)
    response = _post(platform, account.secret_key, body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    assert _intent_count(platform, account) == before


def test_the_sdk_surfaces_an_unknown_parameter_as_invalid_request_error(
    client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.create(
            params={"amount": 100, "currency": "usd", "flavour": "x"}  # type: ignore[typeddict-unknown-key]
        )
    assert raised.value.code == "parameter_unknown"
    assert raised.value.param == "flavour"


def test_a_publishable_key_cannot_create_payment_intents(
    platform: RunningPlatform, account: TestAccount
) -> None:
    before = _intent_count(platform, account)
    response = _post(platform, account.publishable_key, {"amount": "100", "currency": "usd"})
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert _intent_count(platform, account) == before


def test_json_bodies_are_accepted_too(platform: RunningPlatform, account: TestAccount) -> None:
    response = httpx.post(
        f"{platform.api_base}/v1/payment_intents",
        json={"amount": 700, "currency": "usd", "metadata": {"k": "v"}},
        headers={"Authorization": f"Bearer {account.secret_key}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == {"k": "v"}


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/nothing_here"), ("DELETE", "/v1/payment_intents"), ("POST", "/v2/x")],
)
def test_unknown_routes_are_stripe_404s(
    platform: RunningPlatform, account: TestAccount, method: str, path: str
) -> None:
    response = httpx.request(method, f"{platform.api_base}{path}", auth=(account.secret_key, ""))
    assert response.status_code == 404
    assert "Unrecognized request URL" in response.json()["error"]["message"]


def test_an_unknown_payment_intent_is_resource_missing(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.retrieve("pi_doesnotexist")
    assert raised.value.http_status == 404
    assert raised.value.code == "resource_missing"


def test_a_nul_character_anywhere_is_a_400_naming_where_not_a_500(
    platform: RunningPlatform, account: TestAccount
) -> None:
    """PostgreSQL stores no text with NUL in it: requests carrying one used to fail where the
    text was stored, as a 500 that the SDKs retry and idempotency keys then replay."""
    auth = {"Authorization": f"Bearer {account.secret_key}"}
    api = platform.api_base
    form = {**auth, "Content-Type": "application/x-www-form-urlencoded"}
    answers = {
        "path id": httpx.get(f"{api}/v1/payment_intents/pi_%00", headers=auth),
        "list filter": httpx.get(f"{api}/v1/payment_intents?customer=cus_%00", headers=auth),
        "form value": httpx.post(f"{api}/v1/customers", headers=form, content="metadata[k]=v%00w"),
        "form name": httpx.post(f"{api}/v1/customers", headers=form, content="metadata[k%00]=v"),
        "json value": httpx.post(
            f"{api}/v1/customers",
            headers={**auth, "Content-Type": "application/json"},
            content='{"email": "a\\u0000@example.com"}',
        ),
    }
    params = {where: response.json()["error"].get("param") for where, response in answers.items()}
    assert {where: response.status_code for where, response in answers.items()} == dict.fromkeys(
        answers, 400
    )
    assert all(r.json()["error"]["type"] == "invalid_request_error" for r in answers.values())
    assert all("NUL" in r.json()["error"]["message"] for r in answers.values())
    assert params == {
        "path id": "intent",
        "list filter": "customer",
        "form value": "metadata[k]",
        "form name": None,
        "json value": "email",
    }
    customers = httpx.get(f"{api}/v1/customers", headers=auth).json()["data"]
    assert customers == []


def test_a_nul_from_an_internal_grpc_caller_is_invalid_argument(
    platform: RunningPlatform, account: TestAccount
) -> None:
    """The facade refuses NUL itself; an internal caller's NUL, which the database cannot
    store, is refused by the core before the request does anything: that is the caller's
    mistake (INVALID_ARGUMENT), not an internal error, and nothing is stored."""
    metadata = (("remit-account-id", account.id),)
    with internal_sync_channel(
        platform.core.target, InternalAccess(platform.internal_token)
    ) as channel:
        stub = payments_pb2_grpc.PaymentsServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.CreateCustomer(
                payments_pb2.CreateCustomerRequest(name="Ada\x00"), metadata=metadata, timeout=10
            )
        listed = stub.ListCustomers(payments_pb2.ListCustomersRequest(), metadata=metadata)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "NUL" in (raised.value.details() or "")
    assert list(listed.data) == []


def test_a_malformed_customer_email_is_email_invalid_and_creates_nothing(
    client: stripe.StripeClient,
) -> None:
    before = len(client.v1.customers.list(params={"limit": 100}).data)
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.customers.create(params={"email": "jenny.example.com"})
    assert raised.value.http_status == 400
    assert (raised.value.code, raised.value.param) == ("email_invalid", "email")
    assert len(client.v1.customers.list(params={"limit": 100}).data) == before
    created = client.v1.customers.create(params={"email": "jenny@example.com"})
    with pytest.raises(stripe.InvalidRequestError) as on_update:
        client.v1.customers.update(created.id, params={"email": "jenny@"})
    assert on_update.value.code == "email_invalid"
    assert client.v1.customers.retrieve(created.id).email == "jenny@example.com"


def test_a_malformed_billing_email_is_email_invalid_naming_the_nested_param(
    client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_methods.create(
            params={
                "type": "card",
                "card": {"token": "tok_visa"},
                "billing_details": {"email": "not an email"},
            }
        )
    assert (raised.value.code, raised.value.param) == ("email_invalid", "billing_details[email]")


def test_a_confirmation_both_setting_and_clearing_shipping_is_invalid_argument(
    platform: RunningPlatform, account: TestAccount
) -> None:
    """`shipping` with `clear_shipping` asks for two things at once: refused naming shipping,
    before anything is confirmed."""
    metadata = (("remit-account-id", account.id),)
    shipping = common_pb2.Shipping(
        name="Jenny Rosen", address=common_pb2.Address(line1="2 Rue Royale", country="FR")
    )
    with internal_sync_channel(
        platform.core.target, InternalAccess(platform.internal_token)
    ) as channel:
        stub = payments_pb2_grpc.PaymentsServiceStub(channel)
        created = stub.CreatePaymentIntent(
            payments_pb2.CreatePaymentIntentRequest(
                amount=1000, currency="usd", payment_method="pm_card_visa", shipping=shipping
            ),
            metadata=metadata,
            timeout=10,
        ).payment_intent
        with pytest.raises(grpc.RpcError) as raised:
            stub.ConfirmPaymentIntent(
                payments_pb2.ConfirmPaymentIntentRequest(
                    id=created.id, shipping=shipping, clear_shipping=True
                ),
                metadata=metadata,
                timeout=10,
            )
        after = stub.GetPaymentIntent(
            payments_pb2.GetPaymentIntentRequest(id=created.id), metadata=metadata, timeout=10
        ).payment_intent
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "shipping" in (raised.value.details() or "")
    assert after.status == created.status
    assert after.shipping == shipping
    assert not after.HasField("latest_charge")


def test_an_update_both_setting_and_clearing_shipping_is_invalid_argument(
    platform: RunningPlatform, account: TestAccount
) -> None:
    """As on confirmation: refused naming shipping, and nothing of the update is applied."""
    metadata = (("remit-account-id", account.id),)
    shipping = common_pb2.Shipping(
        name="Jenny Rosen", address=common_pb2.Address(line1="2 Rue Royale", country="FR")
    )
    other = common_pb2.Shipping(
        name="Ada Lovelace", address=common_pb2.Address(line1="12 St James's Sq", country="GB")
    )
    with internal_sync_channel(
        platform.core.target, InternalAccess(platform.internal_token)
    ) as channel:
        stub = payments_pb2_grpc.PaymentsServiceStub(channel)
        created = stub.CreatePaymentIntent(
            payments_pb2.CreatePaymentIntentRequest(amount=1000, currency="usd", shipping=shipping),
            metadata=metadata,
            timeout=10,
        ).payment_intent
        with pytest.raises(grpc.RpcError) as raised:
            stub.UpdatePaymentIntent(
                payments_pb2.UpdatePaymentIntentRequest(
                    id=created.id, shipping=other, clear_shipping=True, description="changed"
                ),
                metadata=metadata,
                timeout=10,
            )
        after = stub.GetPaymentIntent(
            payments_pb2.GetPaymentIntentRequest(id=created.id), metadata=metadata, timeout=10
        ).payment_intent
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "shipping" in (raised.value.details() or "")
    assert after == created


@pytest.mark.parametrize(
    ("params", "code", "param"),
    [
        ({"receipt_email": "jenny@example"}, "email_invalid", "receipt_email"),
        ({"statement_descriptor": "2024-11-22"}, "parameter_invalid", "statement_descriptor"),
        ({"statement_descriptor": "A" * 23}, "parameter_invalid", "statement_descriptor"),
        ({"statement_descriptor_suffix": "9" * 23}, "parameter_invalid",
         "statement_descriptor_suffix"),
        ({"statement_descriptor": "SHOP"}, "parameter_invalid", "statement_descriptor"),
        ({"statement_descriptor": "shop<script>"}, "invalid_characters", "statement_descriptor"),
        ({"statement_descriptor": "a\\bcdef"}, "invalid_characters", "statement_descriptor"),
        ({"statement_descriptor": "a*bcdef"}, "invalid_characters", "statement_descriptor"),
        ({"statement_descriptor": "a\nbcdef"}, "invalid_characters", "statement_descriptor"),
        ({"statement_descriptor": "日本語の店です"}, "invalid_characters",
         "statement_descriptor"),
        ({"statement_descriptor_suffix": "ORDER<1>"}, "invalid_characters",
         "statement_descriptor_suffix"),
    ],
)  # fmt: skip
def test_a_payment_refuses_a_malformed_receipt_email_or_descriptor_before_paying(
    platform: RunningPlatform,
    account: TestAccount,
    client: stripe.StripeClient,
    params: dict[str, str],
    code: str,
    param: str,
) -> None:
    before = _intent_count(platform, account)
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.create(
            params={"amount": 1000, "currency": "usd", "payment_method": "pm_card_visa",
                    "confirm": True, "return_url": "https://shop.example/return",
                    **params}  # type: ignore[typeddict-item]
        )  # fmt: skip
    assert (raised.value.code, raised.value.param) == (code, param)
    assert _intent_count(platform, account) == before


def test_a_descriptor_suffix_may_be_digits_and_an_email_clears_with_an_empty_value(
    client: stripe.StripeClient,
) -> None:
    intent = client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "usd", "receipt_email": "jenny@example.com",
                "statement_descriptor_suffix": "6735"}
    )  # fmt: skip
    assert intent.statement_descriptor_suffix == "6735"
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.update(intent.id, params={"receipt_email": "jenny"})
    assert raised.value.code == "email_invalid"
    cleared = client.v1.payment_intents.update(intent.id, params={"receipt_email": ""})
    assert cleared.receipt_email is None


def test_an_update_or_a_capture_refuses_a_descriptor_a_statement_cannot_show(
    client: stripe.StripeClient,
) -> None:
    held = client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "usd", "payment_method": "pm_card_visa",
                "confirm": True, "return_url": "https://shop.example/return",
                "capture_method": "manual"}
    )  # fmt: skip
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.update(held.id, params={"statement_descriptor": "shop<b>"})
    assert (raised.value.code, raised.value.param) == ("invalid_characters", "statement_descriptor")
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.capture(
            held.id, params={"statement_descriptor_suffix": "ORDER\n1"}
        )
    assert (raised.value.code, raised.value.param) == (
        "invalid_characters", "statement_descriptor_suffix",
    )  # fmt: skip
    assert client.v1.payment_intents.retrieve(held.id).status == "requires_capture"


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "shop.example/return",
        "https://[::1",
        "http://[zz]/",
        "https://shop.example:99999/",
        "http://shop.example:abc/",
    ],
)
def test_a_return_url_the_cardholder_cannot_be_sent_to_is_url_invalid(
    platform: RunningPlatform, account: TestAccount, client: stripe.StripeClient, url: str
) -> None:
    """Over REST (create and confirm, stripe-python) and gRPC alike, and nothing is stored."""
    before = _intent_count(platform, account)
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.create(
            params={
                "amount": 1000,
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "confirm": True,
                "return_url": url,
            }
        )
    assert (raised.value.http_status, raised.value.code) == (400, "url_invalid")
    assert raised.value.param == "return_url"
    assert _intent_count(platform, account) == before
    intent = client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError) as refused_confirm:
        client.v1.payment_intents.confirm(
            intent.id, params={"payment_method": "pm_card_visa", "return_url": url}
        )
    assert refused_confirm.value.code == "url_invalid"
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"
    with internal_sync_channel(platform.core.target, platform.internal_access) as channel:
        stub = payments_pb2_grpc.PaymentsServiceStub(channel)
        with pytest.raises(grpc.RpcError) as over_grpc:
            stub.CreatePaymentIntent(
                payments_pb2.CreatePaymentIntentRequest(
                    amount=1000, currency="usd", return_url=url
                ),
                metadata=(("remit-account-id", account.id),),
                timeout=10,
            )
    assert over_grpc.value.code() is grpc.StatusCode.INVALID_ARGUMENT
