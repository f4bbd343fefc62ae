"""An amount far beyond anything remit holds is refused naming the parameter the client sent,
never a name of remit's insides (the ledger's `postings[0][amount_minor]`)."""

from collections.abc import Callable

import grpc
import httpx
import pytest
import stripe
from google.rpc import status_pb2

from remit.grpcutil.internal_auth import internal_sync_channel
from remit_api.common.v1 import common_pb2
from remit_api.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform

INT64_MAX = 2**63 - 1
# Just past the most one ledger posting moves.
BEYOND_THE_LEDGER = 2**62
RETURN_URL = "https://shop.example/return"


def _paid(client: stripe.StripeClient, **params: object) -> stripe.PaymentIntent:
    return client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": RETURN_URL,
            **params,  # type: ignore[typeddict-item]
        }
    )


@pytest.mark.parametrize("amount", [INT64_MAX, BEYOND_THE_LEDGER])
def test_a_huge_payout_is_balance_insufficient_naming_amount(
    client: stripe.StripeClient, amount: int
) -> None:
    """As any payout beyond the balance is: no balance holds that much."""
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payouts.create(params={"amount": amount, "currency": "usd"})
    error = raised.value
    assert (error.http_status, error.code, error.param) == (400, "balance_insufficient", "amount")
    assert f"it needs {amount} usd and 0 usd is available" in str(error.user_message)
    assert client.v1.payouts.list().data == []


def test_a_huge_payout_over_grpc_is_the_same_refusal(
    platform: RunningPlatform, account: TestAccount
) -> None:
    with (
        internal_sync_channel(platform.core.target, platform.internal_access) as channel,
        pytest.raises(grpc.RpcError) as raised,
    ):
        ledger_pb2_grpc.LedgerServiceStub(channel).CreatePayout(
            ledger_pb2.CreatePayoutRequest(amount=INT64_MAX, currency="usd"),
            metadata=(("remit-account-id", account.id),),
            timeout=10,
        )
    assert raised.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    packed = [
        item.value
        for item in raised.value.trailing_metadata()
        if item.key == "grpc-status-details-bin"
    ]
    detail = common_pb2.ErrorDetail()
    assert status_pb2.Status.FromString(packed[0]).details[0].Unpack(detail)
    assert (detail.code, detail.param) == ("balance_insufficient", "amount")


def _refusal(
    platform: RunningPlatform, account: TestAccount, path: str, data: dict[str, object]
) -> dict[str, str]:
    answer = httpx.post(
        f"{platform.api_base}{path}",
        data=data,
        headers={"Authorization": f"Bearer {account.secret_key}"},
        timeout=30,
    )
    assert answer.status_code == 400, answer.text
    error: dict[str, str] = answer.json()["error"]
    return error


Request = Callable[[stripe.StripeClient], tuple[str, dict[str, object]]]


@pytest.mark.parametrize(
    ("request_of", "param"),
    [
        (lambda c: ("/v1/payment_intents", {"amount": INT64_MAX, "currency": "usd"}), "amount"),
        (lambda c: (f"/v1/payment_intents/{_paid(c).id}", {"amount": INT64_MAX}), "amount"),
        (
            lambda c: (
                f"/v1/payment_intents/{_paid(c, capture_method='manual').id}/capture",
                {"amount_to_capture": INT64_MAX},
            ),
            "amount_to_capture",
        ),
        (
            lambda c: (
                "/v1/payment_intents",
                {"amount": 100, "currency": "usd", "application_fee_amount": INT64_MAX},
            ),
            "application_fee_amount",
        ),
        (
            lambda c: (
                "/v1/payment_intents",
                {
                    "amount": 100,
                    "currency": "usd",
                    "transfer_data[amount]": INT64_MAX,
                    "transfer_data[destination]": "acct_1",
                },
            ),
            "transfer_data",
        ),
    ],
    ids=[
        "intent-amount",
        "intent-update-amount",
        "amount_to_capture",
        "application_fee_amount",
        "transfer_data-amount",
    ],
)
def test_every_other_amount_names_its_parameter(
    platform: RunningPlatform,
    account: TestAccount,
    client: stripe.StripeClient,
    request_of: Request,
    param: str,
) -> None:
    """Bounded by the schema (intents, captures: at most 99999999; refunds below), or not
    taken at all (remit has no Connect)."""
    path, data = request_of(client)
    error = _refusal(platform, account, path, data)
    assert error["param"] == param
    assert "posting" not in error["message"].lower()


@pytest.mark.parametrize("amount", [100_000_000, INT64_MAX])
def test_an_intent_amount_past_the_maximum_is_amount_too_large_as_the_core_says_it(
    client: stripe.StripeClient, amount: int
) -> None:
    """The facade refuses it before the core sees it, with the code the core (and Stripe) give
    an amount too large, not that of a malformed integer."""
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.create(params={"amount": amount, "currency": "usd"})
    assert (raised.value.code, raised.value.param) == ("amount_too_large", "amount")


@pytest.mark.parametrize("amount", [100_000_000, INT64_MAX])
def test_a_refund_amount_past_the_maximum_is_refused_by_the_facade_as_an_intents_is(
    client: stripe.StripeClient, amount: int
) -> None:
    """The refund schema bounds its amount as the intent schema does: amount_too_large from
    the facade, in the facade's words, never reaching the core."""
    intent = _paid(client)
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.refunds.create(params={"payment_intent": intent.id, "amount": amount})
    assert (raised.value.code, raised.value.param) == ("amount_too_large", "amount")
    assert raised.value.user_message == "This value must be less than or equal to 99999999."
    assert client.v1.refunds.list(params={"payment_intent": intent.id}).data == []


@pytest.mark.parametrize("amount", [100_000_000, INT64_MAX])
def test_an_amount_to_capture_past_the_maximum_is_amount_too_large_as_the_core_says_it(
    client: stripe.StripeClient, amount: int
) -> None:
    """The capture schema bounds amount_to_capture as the intent schema bounds amount: the code
    the core gives it (amount_too_large), not that of a malformed integer, and nothing
    captured."""
    intent = _paid(client, capture_method="manual")
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.capture(intent.id, params={"amount_to_capture": amount})
    assert (raised.value.code, raised.value.param) == ("amount_too_large", "amount_to_capture")
    assert raised.value.user_message == "This value must be less than or equal to 99999999."
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_capture"
