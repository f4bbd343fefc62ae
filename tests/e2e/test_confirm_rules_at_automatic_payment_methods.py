"""What confirming needs with automatic payment methods on (the default from 2023-08-16,
`versions/v2023_08_16.py`): a create refused for want of a return_url stores no card at the
vault, and error_on_requires_action is refused from 2023-08-16 on while older pinned versions
keep it."""

from collections.abc import Iterator
from typing import Any

import grpc
import psycopg
import pytest
import stripe

from remit.grpcutil.internal_auth import internal_sync_channel
from remit.worker.runner import libpq_url
from remit_api.payments.v1 import payments_pb2, payments_pb2_grpc
from tests.support.accounts import TestAccount, create_account
from tests.support.platform import RunningPlatform
from tests.support.postgres import WorkerDatabases

RETURN_URL = "https://shop.example/return"
BEFORE_AUTOMATIC_DEFAULT = "2022-11-15"
CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "739"}


@pytest.fixture
def raw_account(platform: RunningPlatform) -> TestAccount:
    return create_account(platform.core, token=platform.internal_token, raw_card_access=True)


def _client(platform: RunningPlatform, account: TestAccount, **options: Any) -> stripe.StripeClient:
    return stripe.StripeClient(
        account.secret_key,
        base_addresses={"api": platform.api_base},
        max_network_retries=0,
        **options,
    )


def _vault_rows(databases: WorkerDatabases, account_id: str) -> tuple[int, int]:
    """Every card the vault ever stored for the account (deleted ones too), and every access
    to card data it recorded."""
    with psycopg.connect(libpq_url(databases.vault_url), autocommit=True) as db:
        counts = [
            db.execute(
                f"SELECT count(*) FROM {table} WHERE account_id = %s",  # noqa: S608
                (account_id,),
            ).fetchone()
            for table in ("cards", "audit_events")
        ]
    assert None not in counts
    return int(counts[0][0]), int(counts[1][0])  # type: ignore[index]


def test_a_create_refused_for_want_of_a_return_url_stores_no_card(
    platform: RunningPlatform, databases: WorkerDatabases, raw_account: TestAccount
) -> None:
    client = _client(platform, raw_account)
    before = _vault_rows(databases, raw_account.id)
    params: Any = {
        "amount": 1000,
        "currency": "usd",
        "confirm": True,
        "payment_method_data": {"type": "card", "card": CARD},
    }
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.create(params=params)
    assert refused.value.error is not None
    assert (refused.value.error.code, refused.value.error.param) == (
        "parameter_missing",
        "return_url",
    )
    assert _vault_rows(databases, raw_account.id) == before
    with_return_url: Any = {**params, "return_url": RETURN_URL}
    paid = client.v1.payment_intents.create(params=with_return_url)
    assert paid.status == "succeeded"
    assert _vault_rows(databases, raw_account.id)[0] == before[0] + 1


def _refused_error_on_requires_action(refused: pytest.ExceptionInfo[Any]) -> None:
    error = refused.value.error
    assert refused.value.http_status == 400
    assert (error.type, error.param) == ("invalid_request_error", "error_on_requires_action")
    assert "automatic payment methods" in error.message


def test_error_on_requires_action_is_refused_with_automatic_payment_methods(
    platform: RunningPlatform, account: TestAccount
) -> None:
    client = _client(platform, account)
    params: Any = {
        "amount": 1000,
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "confirm": True,
        "return_url": RETURN_URL,
        "error_on_requires_action": True,
    }
    with pytest.raises(stripe.InvalidRequestError) as on_create:
        client.v1.payment_intents.create(params=params)
    _refused_error_on_requires_action(on_create)
    intent = client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError) as on_confirm:
        client.v1.payment_intents.confirm(
            intent.id,
            params={
                "payment_method": "pm_card_visa",
                "return_url": RETURN_URL,
                "error_on_requires_action": True,
            },
        )
    _refused_error_on_requires_action(on_confirm)
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"


def test_error_on_requires_action_with_a_card_to_store_is_refused_before_storing_it(
    platform: RunningPlatform, databases: WorkerDatabases, raw_account: TestAccount
) -> None:
    client = _client(platform, raw_account)
    before = _vault_rows(databases, raw_account.id)
    params: Any = {
        "amount": 1000,
        "currency": "usd",
        "confirm": True,
        "return_url": RETURN_URL,
        "error_on_requires_action": True,
        "payment_method_data": {"type": "card", "card": CARD},
    }
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.create(params=params)
    _refused_error_on_requires_action(refused)
    assert _vault_rows(databases, raw_account.id) == before


def test_older_versions_keep_error_on_requires_action(
    platform: RunningPlatform, account: TestAccount
) -> None:
    client = _client(platform, account, stripe_version=BEFORE_AUTOMATIC_DEFAULT)
    paid = client.v1.payment_intents.create(
        params={
            "amount": 1000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "error_on_requires_action": True,
        }
    )
    assert paid.status == "succeeded"
    intent = client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    confirmed = client.v1.payment_intents.confirm(
        intent.id, params={"payment_method": "pm_card_visa", "error_on_requires_action": True}
    )
    assert confirmed.status == "succeeded"


@pytest.fixture
def payments_stub(
    platform: RunningPlatform,
) -> Iterator[payments_pb2_grpc.PaymentsServiceStub]:
    with internal_sync_channel(platform.core.target, platform.internal_access) as channel:
        yield payments_pb2_grpc.PaymentsServiceStub(channel)


def test_grpc_refuses_error_on_requires_action_with_automatic_payment_methods(
    payments_stub: payments_pb2_grpc.PaymentsServiceStub, account: TestAccount
) -> None:
    metadata = (("remit-account-id", account.id),)
    request = payments_pb2.CreatePaymentIntentRequest(
        amount=1000, currency="usd", payment_method="pm_card_visa", confirm=True,
        return_url=RETURN_URL, error_on_requires_action=True,
    )  # fmt: skip
    request.automatic_payment_methods.enabled = True
    with pytest.raises(grpc.RpcError) as raised:
        payments_stub.CreatePaymentIntent(request, metadata=metadata, timeout=10)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    request.ClearField("automatic_payment_methods")
    request.payment_method_types.append("card")
    paid = payments_stub.CreatePaymentIntent(request, metadata=metadata, timeout=30)
    assert paid.payment_intent.status == payments_pb2.PAYMENT_INTENT_STATUS_SUCCEEDED
