"""A charge's refunds under the charge: the URL `Charge.refunds` names on versions before
2022-11-15, which clients page through."""

from typing import Any

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


def _headers(account: TestAccount, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.secret_key}", **extra}


def test_a_refund_created_under_its_charge_is_a_refund_of_that_charge(
    client: stripe.StripeClient, account: TestAccount
) -> None:
    charge_id = _refunded_charge(client, refunds=0)
    charge = client.v1.charges.retrieve(charge_id, params={"expand": ["refunds"]})
    assert charge.refunds is not None
    # stripe-python posts to the list's URL: `/v1/charges/{charge}/refunds`.
    # (Its parameters are typed as mappings, whatever they are.)
    params: dict[str, Any] = {
        "amount": 700,
        "reason": "requested_by_customer",
        "metadata": {"a": "1"},
    }
    refund = charge.refunds.create(**params)
    assert (refund.object, refund.charge, refund.amount) == ("refund", charge_id, 700)
    assert refund.metadata is not None
    assert (refund.reason, refund.metadata.to_dict()) == ("requested_by_customer", {"a": "1"})
    assert client.v1.refunds.retrieve(refund.id).amount == 700
    assert client.v1.charges.retrieve(charge_id).amount_refunded == 700


def test_creating_under_the_charge_answers_as_v1_refunds_does(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    charge_id = _refunded_charge(client, refunds=0)
    under = f"{platform.api_base}/v1/charges/{charge_id}/refunds"
    flat = f"{platform.api_base}/v1/refunds"
    too_much = {"amount": "5001"}
    there = httpx.post(under, data=too_much, headers=_headers(account))
    here = httpx.post(flat, data={"charge": charge_id, **too_much}, headers=_headers(account))
    assert there.status_code == here.status_code == 400
    assert there.json() == here.json()
    both = httpx.post(under, data={"payment_intent": "pi_x"}, headers=_headers(account))
    assert both.status_code == 400
    assert both.json()["error"]["code"] == "parameters_exclusive"
    unknown = httpx.post(
        f"{platform.api_base}/v1/charges/ch_nope/refunds", headers=_headers(account)
    )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "resource_missing"
    # Rendered at the request's version, as any refund.
    old = ok(
        httpx.post(
            under, data={"amount": "100"}, headers=_headers(account, **{"Stripe-Version": OLD})
        )
    )
    assert old == ok(
        httpx.get(f"{flat}/{old['id']}", headers=_headers(account, **{"Stripe-Version": OLD}))
    )


def test_a_key_used_under_the_charge_replays_there_and_nowhere_else(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    charge_id = _refunded_charge(client, refunds=0)
    keyed = _headers(account, **{"Idempotency-Key": "refund-under-charge"})
    under = f"{platform.api_base}/v1/charges/{charge_id}/refunds"
    first = httpx.post(under, data={"amount": "100"}, headers=keyed)
    again = httpx.post(under, data={"amount": "100"}, headers=keyed)
    assert ok(first) == ok(again)
    assert again.headers.get("Idempotent-Replayed") == "true"
    elsewhere = httpx.post(
        f"{platform.api_base}/v1/refunds",
        data={"charge": charge_id, "amount": "100"},
        headers=keyed,
    )
    assert elsewhere.status_code == 400, elsewhere.text
    assert elsewhere.json()["error"]["type"] == "idempotency_error"
    assert len(client.v1.refunds.list(params={"charge": charge_id}).data) == 1


def test_a_refunds_metadata_is_updated_under_its_charge_only(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    refunded = _refunded_charge(client, refunds=1)
    other = _refunded_charge(client, refunds=0)
    (refund,) = client.v1.refunds.list(params={"charge": refunded}).data
    elsewhere = httpx.post(
        f"{platform.api_base}/v1/charges/{other}/refunds/{refund.id}",
        data={"metadata[k]": "v"},
        headers=_headers(account),
    )
    assert elsewhere.status_code == 404, elsewhere.text
    assert elsewhere.json()["error"]["code"] == "resource_missing"
    unchanged = client.v1.refunds.retrieve(refund.id).metadata
    assert unchanged is not None
    assert unchanged.to_dict() == {}
    updated = ok(
        httpx.post(
            f"{platform.api_base}/v1/charges/{refunded}/refunds/{refund.id}",
            data={"metadata[k]": "v"},
            headers=_headers(account),
        )
    )
    assert (updated["id"], updated["metadata"]) == (refund.id, {"k": "v"})
