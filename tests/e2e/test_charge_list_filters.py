"""GET /v1/charges filters: every filter Stripe takes is applied, none accepted and ignored."""

import httpx
import stripe

from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform


def _pay(client: stripe.StripeClient) -> stripe.PaymentIntent:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": "https://example.com/back",
        }
    )
    assert intent.status == "succeeded"
    return intent


def test_charges_listed_by_any_transfer_group_are_none_as_remit_has_no_transfer_groups(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    _pay(client)
    response = httpx.get(
        f"{platform.api_base}/v1/charges",
        params={"transfer_group": "group_nobody_uses", "limit": "100"},
        headers={"Authorization": f"Bearer {account.secret_key}"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "object": "list",
        "data": [],
        "has_more": False,
        "url": "/v1/charges",
    }


def test_the_sdk_pages_through_an_empty_transfer_group_list(client: stripe.StripeClient) -> None:
    _pay(client)
    listed = client.v1.charges.list(params={"transfer_group": "ORDER_95"})
    assert listed.data == []
    assert list(listed.auto_paging_iter()) == []


def test_charges_listed_without_a_transfer_group_are_all_there(
    client: stripe.StripeClient,
) -> None:
    intent = _pay(client)
    assert [charge.id for charge in client.v1.charges.list().data] == [intent.latest_charge]
