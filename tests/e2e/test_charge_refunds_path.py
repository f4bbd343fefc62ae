"""A charge's refunds under the charge: the URL `Charge.refunds` names on versions before
2022-11-15, which clients page through."""

import httpx
import stripe

from tests.support.accounts import TestAccount
from tests.support.http import ok
from tests.support.platform import RunningPlatform

OLD = "2022-08-01"


def _refunded_charge(client: stripe.StripeClient, refunds: int) -> str:
    paid = client.v1.payment_intents.create(
        params={
            "amount": 5000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": "https://shop.example/back",
        }
    )
    assert paid.latest_charge is not None
    charge_id = str(paid.latest_charge)
    for _ in range(refunds):
        client.v1.refunds.create(params={"charge": charge_id, "amount": 100})
    return charge_id


def test_the_refunds_list_an_old_version_names_on_a_charge_pages_through(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    charge_id = _refunded_charge(client, refunds=3)
    headers = {"Authorization": f"Bearer {account.secret_key}", "Stripe-Version": OLD}
    charge = ok(httpx.get(f"{platform.api_base}/v1/charges/{charge_id}", headers=headers))
    url = charge["refunds"]["url"]
    assert url == f"/v1/charges/{charge_id}/refunds"
    first = ok(httpx.get(platform.api_base + url, params={"limit": "2"}, headers=headers))
    assert (first["object"], first["url"], first["has_more"]) == ("list", url, True)
    rest = ok(
        httpx.get(
            platform.api_base + url,
            params={"limit": "2", "starting_after": first["data"][-1]["id"]},
            headers=headers,
        )
    )
    seen = [refund["id"] for refund in first["data"] + rest["data"]]
    assert rest["has_more"] is False
    assert len(seen) == len(set(seen)) == 3
    assert all(refund["charge"] == charge_id for refund in first["data"] + rest["data"])
    one = ok(httpx.get(f"{platform.api_base}{url}/{seen[0]}", headers=headers))
    assert one["id"] == seen[0]


def test_a_refund_of_another_charge_or_an_unknown_charge_is_not_found_there(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    refunded = _refunded_charge(client, refunds=1)
    other = _refunded_charge(client, refunds=0)
    (refund,) = client.v1.refunds.list(params={"charge": refunded}).data
    headers = {"Authorization": f"Bearer {account.secret_key}"}
    for path in (f"/v1/charges/{other}/refunds/{refund.id}", "/v1/charges/ch_nope/refunds"):
        response = httpx.get(platform.api_base + path, headers=headers)
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "resource_missing"
