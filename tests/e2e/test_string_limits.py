"""Text parameters are held to Stripe's limits, over REST and gRPC alike: a value at its limit is
taken, one character more is refused naming the parameter, and the refused request stores
nothing and keeps no idempotency key (a retry of it, put right, under the same key, goes
through).
"""

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import grpc
import httpx
import psycopg
import pytest
import stripe
from google.protobuf.message import Message
from grpc_status import rpc_status

from remit.grpcutil.internal_auth import internal_sync_channel
from remit.worker.runner import libpq_url
from remit_api.common.v1 import common_pb2
from remit_api.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from remit_api.payments.v1 import payments_pb2 as pb
from remit_api.payments.v1 import payments_pb2_grpc
from remit_api.radar.v1 import radar_pb2, radar_pb2_grpc
from remit_api.vault.v1 import vault_pb2, vault_pb2_grpc
from remit_api.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc
from tests.support.accounts import TestAccount, call_metadata
from tests.support.bad_input import stored_idempotency_keys
from tests.support.platform import RunningPlatform
from tests.support.postgres import WorkerDatabases

Text = Callable[[int], str]


def letters(length: int) -> str:
    return "x" * length


def email(length: int) -> str:
    return "j" * (length - len("@example.com")) + "@example.com"


def url(length: int) -> str:
    return "https://example.com/" + "h" * (length - len("https://example.com/"))


# --- REST --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestCase:
    """A create (or a list, when `listed` is None) whose `param` takes `limit` characters."""

    path: str
    param: str
    limit: int
    base: dict[str, str] = field(default_factory=dict)
    text: Text = letters
    listed: str | None = None
    """Where what the create makes is listed (`path` itself if not given); None: a list."""
    method: str = "POST"
    funded: bool = False
    """The account needs available funds (a payout)."""

    @property
    def id(self) -> str:
        return f"{self.method} {self.path} {self.param}"


_PI: Final = "/v1/payment_intents"
_AMOUNT: Final = {"amount": "1000", "currency": "usd"}
_CARD: Final = {"type": "card", "card[token]": "tok_visa"}
_PMD: Final = {"payment_method_data[type]": "card", "payment_method_data[card][token]": "tok_visa"}

REST_CASES: Final = [
    RestCase(_PI, "description", 1000, _AMOUNT),
    RestCase(_PI, "statement_descriptor", 22, _AMOUNT),
    RestCase(_PI, "statement_descriptor_suffix", 22, _AMOUNT),
    RestCase(_PI, "receipt_email", 800, _AMOUNT, email),
    RestCase(_PI, "shipping[name]", 5000, {**_AMOUNT, "shipping[address][line1]": "2 Rue Royale"}),
    RestCase(_PI, "shipping[address][line1]", 5000, {**_AMOUNT, "shipping[name]": "Jenny"}),
    RestCase(_PI, "payment_method_data[billing_details][name]", 5000, {**_AMOUNT, **_PMD}),
    RestCase(_PI, "metadata[order]", 500, _AMOUNT),
    RestCase("/v1/customers", "name", 256),
    RestCase("/v1/customers", "email", 512, text=email),
    RestCase("/v1/customers", "phone", 20),
    RestCase("/v1/customers", "description", 5000),
    RestCase("/v1/customers", "business_name", 150),
    RestCase("/v1/customers", "address[line2]", 5000),
    RestCase("/v1/payment_methods", "billing_details[tax_id]", 200, _CARD),
    RestCase("/v1/payment_methods", "billing_details[email]", 800, _CARD, email),
    RestCase(
        "/v1/webhook_endpoints",
        "description",
        5000,
        {"url": "https://example.com/hooks", "enabled_events[0]": "*"},
    ),
    RestCase("/v1/webhook_endpoints", "url", 2048, {"enabled_events[0]": "*"}, url),
    RestCase("/v1/radar/value_lists", "alias", 100, {"name": "Blocked"}),
    RestCase("/v1/radar/value_lists", "name", 100, {"alias": "blocked"}),
    RestCase("/v1/payouts", "description", 5000, {"amount": "100", "currency": "usd"}, funded=True),
    RestCase(_PI, "customer", 5000, method="GET", listed=None),
    RestCase("/v1/customers", "email", 512, method="GET", listed=None),
]


def _auth(account: TestAccount) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.secret_key}"}


def _count(platform: RunningPlatform, account: TestAccount, path: str) -> int:
    response = httpx.get(
        f"{platform.api_base}{path}", params={"limit": "100"}, headers=_auth(account)
    )
    assert response.status_code == 200, response.text
    return len(response.json()["data"])


def _fund(platform: RunningPlatform, account: TestAccount) -> None:
    """Available funds: a payment with the test card whose funds skip the pending balance."""
    response = httpx.post(
        f"{platform.api_base}{_PI}",
        data={"amount": "5000", "currency": "usd", "payment_method": "pm_card_bypassPending",
              "confirm": "true", "return_url": "https://shop.example/return"},
        headers=_auth(account),
    )  # fmt: skip
    assert response.json()["status"] == "succeeded", response.text


def assert_refused_for_length(error: dict[str, Any], param: str, limit: int) -> None:
    assert error["type"] == "invalid_request_error"
    assert (error["code"], error["param"]) == ("parameter_invalid", param)
    assert error["message"].startswith("Invalid ")
    assert f"at most {limit} characters" in error["message"]
    # Only the start of the value is quoted.
    assert len(error["message"]) < 120


def _send(
    platform: RunningPlatform, account: TestAccount, case: RestCase, value: str, key: str
) -> httpx.Response:
    params = {**case.base, case.param: value}
    if case.method == "GET":
        return httpx.get(f"{platform.api_base}{case.path}", params=params, headers=_auth(account))
    return httpx.post(
        f"{platform.api_base}{case.path}",
        data=params,
        headers={**_auth(account), "Idempotency-Key": key},
    )


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in REST_CASES])
def test_a_rest_parameter_takes_its_limit_and_refuses_one_more_storing_nothing(
    platform: RunningPlatform, account: TestAccount, case: RestCase
) -> None:
    if case.funded:
        _fund(platform, account)
    listed = case.listed or case.path
    counted = case.method == "POST"
    before = _count(platform, account, listed) if counted else 0
    key = str(uuid.uuid4())
    refused = _send(platform, account, case, case.text(case.limit + 1), key)
    assert refused.status_code == 400, refused.text
    assert_refused_for_length(refused.json()["error"], case.param, case.limit)
    if counted:
        assert _count(platform, account, listed) == before
    # Put right and sent again under the same key: nothing of the refusal was kept.
    taken = _send(platform, account, case, case.text(case.limit), key)
    assert taken.status_code == 200, taken.text[:500]
    if counted:
        assert _count(platform, account, listed) == before + 1


def test_an_id_in_the_path_is_held_to_stripes_limit(
    platform: RunningPlatform, account: TestAccount
) -> None:
    def get(intent: str) -> httpx.Response:
        return httpx.get(f"{platform.api_base}{_PI}/{intent}", headers=_auth(account))

    at_limit = get("pi_" + "x" * 4997)
    assert (at_limit.status_code, at_limit.json()["error"]["code"]) == (404, "resource_missing")
    over = get("pi_" + "x" * 4998)
    assert over.status_code == 400
    assert_refused_for_length(over.json()["error"], "intent", 5000)


def test_the_sdk_sees_the_parameter_an_over_long_value_was_sent_in(
    client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused_create:
        client.v1.payment_intents.create(
            params={"amount": 1000, "currency": "usd", "description": "d" * 1001}
        )
    assert (refused_create.value.http_status, refused_create.value.param) == (400, "description")
    assert client.v1.payment_intents.list().data == []
    intent = client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "usd", "description": "d" * 1000}
    )
    with pytest.raises(stripe.InvalidRequestError) as refused_update:
        client.v1.payment_intents.update(
            intent.id,
            params={"shipping": {"name": "Jenny", "address": {"line1": "2" * 5001}}},
        )
    assert refused_update.value.param == "shipping[address][line1]"
    assert client.v1.payment_intents.retrieve(intent.id).shipping is None
    with pytest.raises(stripe.InvalidRequestError) as refused_customer:
        client.v1.customers.create(params={"phone": "+1 555 0100 ext 12345"})
    assert refused_customer.value.param == "phone"
    assert client.v1.customers.list().data == []


# --- gRPC --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stubs:
    payments: payments_pb2_grpc.PaymentsServiceStub
    ledger: ledger_pb2_grpc.LedgerServiceStub
    webhooks: webhooks_pb2_grpc.WebhooksServiceStub
    radar: radar_pb2_grpc.RadarServiceStub
    vault: vault_pb2_grpc.VaultServiceStub


@dataclass(frozen=True)
class GrpcCase:
    """A create whose field (named `param` in a refusal) takes `limit` characters."""

    rpc: Callable[[Stubs], Callable[..., Any]]
    build: Callable[[str, str], Message]
    """The request, given the text and the account's id."""
    param: str
    limit: int
    listed: str
    """Where the REST facade lists what the create makes; `cards` for the vault."""
    text: Text = letters
    keyed: bool = True
    funded: bool = False

    @property
    def id(self) -> str:
        return f"{type(self.build('', '')).__name__} {self.param}"


def _shipping(line1: str) -> common_pb2.Shipping:
    return common_pb2.Shipping(name="Jenny", address=common_pb2.Address(line1=line1))


GRPC_CASES: Final = [
    GrpcCase(
        lambda s: s.payments.CreatePaymentIntent,
        lambda text, _: pb.CreatePaymentIntentRequest(
            amount=1000, currency="usd", description=text
        ),
        "description",
        1000,
        _PI,
    ),
    GrpcCase(
        lambda s: s.payments.CreatePaymentIntent,
        lambda text, _: pb.CreatePaymentIntentRequest(
            amount=1000, currency="usd", statement_descriptor_suffix=text
        ),
        "statement_descriptor_suffix",
        22,
        _PI,
    ),
    GrpcCase(
        lambda s: s.payments.CreatePaymentIntent,
        lambda text, _: pb.CreatePaymentIntentRequest(
            amount=1000, currency="usd", receipt_email=text
        ),
        "receipt_email",
        800,
        _PI,
        email,
    ),
    GrpcCase(
        lambda s: s.payments.CreatePaymentIntent,
        lambda text, _: pb.CreatePaymentIntentRequest(
            amount=1000, currency="usd", shipping=_shipping(text)
        ),
        "shipping[address][line1]",
        5000,
        _PI,
    ),
    GrpcCase(
        lambda s: s.payments.CreateCustomer,
        lambda text, _: pb.CreateCustomerRequest(name=text),
        "name",
        256,
        "/v1/customers",
    ),
    GrpcCase(
        lambda s: s.payments.CreateCustomer,
        lambda text, _: pb.CreateCustomerRequest(phone=text),
        "phone",
        20,
        "/v1/customers",
    ),
    GrpcCase(
        lambda s: s.payments.CreateCustomer,
        lambda text, _: pb.CreateCustomerRequest(email=text),
        "email",
        512,
        "/v1/customers",
        email,
    ),
    GrpcCase(
        lambda s: s.payments.CreatePaymentMethod,
        lambda text, _: pb.CreatePaymentMethodRequest(
            type=pb.PAYMENT_METHOD_TYPE_CARD,
            card=pb.CardInput(token="tok_visa"),
            billing_details=common_pb2.BillingDetails(tax_id=text),
        ),
        "billing_details[tax_id]",
        200,
        "/v1/payment_methods",
    ),
    GrpcCase(
        lambda s: s.ledger.CreatePayout,
        lambda text, _: ledger_pb2.CreatePayoutRequest(
            amount=100, currency="usd", description=text
        ),
        "description",
        5000,
        "/v1/payouts",
        funded=True,
    ),
    GrpcCase(
        lambda s: s.ledger.CreatePayout,
        lambda text, _: ledger_pb2.CreatePayoutRequest(
            amount=100, currency="usd", statement_descriptor=text
        ),
        "statement_descriptor",
        22,
        "/v1/payouts",
        funded=True,
    ),
    GrpcCase(
        lambda s: s.webhooks.CreateWebhookEndpoint,
        lambda text, _: webhooks_pb2.CreateWebhookEndpointRequest(
            url="https://example.com/hooks", enabled_events=["*"], description=text
        ),
        "description",
        5000,
        "/v1/webhook_endpoints",
    ),
    GrpcCase(
        lambda s: s.radar.CreateValueList,
        lambda text, _: radar_pb2.CreateValueListRequest(alias=text, name="Blocked"),
        "alias",
        100,
        "/v1/radar/value_lists",
    ),
    GrpcCase(
        lambda s: s.vault.TokenizeCard,
        lambda text, account_id: vault_pb2.TokenizeCardRequest(
            account_id=account_id,
            number="4242424242424242",
            exp_month=12,
            exp_year=datetime.now(UTC).year + 2,
            requester="api",
            billing_details=common_pb2.BillingDetails(name=text),
        ),
        "billing_details[name]",
        5000,
        "cards",
        keyed=False,
    ),
]


@pytest.fixture(scope="module")
def stubs(platform: RunningPlatform) -> Iterator[Stubs]:
    with (
        internal_sync_channel(platform.core.target, platform.internal_access) as core,
        internal_sync_channel(platform.vault.target, platform.internal_access) as vault,
    ):
        yield Stubs(
            payments_pb2_grpc.PaymentsServiceStub(core),
            ledger_pb2_grpc.LedgerServiceStub(core),
            webhooks_pb2_grpc.WebhooksServiceStub(core),
            radar_pb2_grpc.RadarServiceStub(core),
            vault_pb2_grpc.VaultServiceStub(vault),
        )


def _stored_cards(databases: WorkerDatabases, account: TestAccount) -> int:
    with psycopg.connect(libpq_url(databases.vault_url), autocommit=True) as db:
        row = db.execute(
            "SELECT count(*) FROM cards WHERE account_id = %s", (account.id,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def _refusal_param(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for packed in status.details:
        detail = common_pb2.ErrorDetail()
        if packed.Unpack(detail):
            return detail.param
    raise AssertionError("the refusal carries no ErrorDetail")


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in GRPC_CASES])
def test_a_grpc_field_takes_its_limit_and_refuses_one_more_storing_nothing(
    platform: RunningPlatform,
    databases: WorkerDatabases,
    account: TestAccount,
    stubs: Stubs,
    case: GrpcCase,
) -> None:
    if case.funded:
        _fund(platform, account)

    def count() -> int:
        if case.listed == "cards":
            return _stored_cards(databases, account)
        return _count(platform, account, case.listed)

    before = count()
    key = str(uuid.uuid4())
    metadata = call_metadata(account.id, key if case.keyed else None)
    rpc = case.rpc(stubs)
    with pytest.raises(grpc.RpcError) as refused:
        rpc(case.build(case.text(case.limit + 1), account.id), metadata=metadata, timeout=30)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    details = refused.value.details() or ""
    assert f"at most {case.limit} characters" in details
    assert len(details) < 120
    assert _refusal_param(refused.value) == case.param
    assert count() == before
    if case.keyed:
        assert stored_idempotency_keys(databases.core_url, account.id, [key]) == []
    rpc(case.build(case.text(case.limit), account.id), metadata=metadata, timeout=30)
    assert count() == before + 1


def test_an_update_over_a_limit_changes_nothing(
    platform: RunningPlatform, account: TestAccount, stubs: Stubs
) -> None:
    metadata = call_metadata(account.id)
    created = stubs.payments.CreatePaymentIntent(
        pb.CreatePaymentIntentRequest(amount=1000, currency="usd", description="kept"),
        metadata=metadata,
        timeout=30,
    ).payment_intent
    with pytest.raises(grpc.RpcError) as refused:
        stubs.payments.UpdatePaymentIntent(
            pb.UpdatePaymentIntentRequest(
                id=created.id, description="changed", statement_descriptor="S" * 23
            ),
            metadata=metadata,
            timeout=30,
        )
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert _refusal_param(refused.value) == "statement_descriptor"
    after = stubs.payments.GetPaymentIntent(
        pb.GetPaymentIntentRequest(id=created.id), metadata=metadata, timeout=30
    ).payment_intent
    assert after == created
