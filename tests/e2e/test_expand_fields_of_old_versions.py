"""Before 2022-11-15 a PaymentIntent embeds its `charges` and a Charge its `refunds`, and
expanding into them (`charges.data.balance_transaction`, the usual way to read fees then)
works at those versions; at the latest, where `charges` is gone, it is still a 400 (a charge's
`refunds` is still there when expanded: see test_expand_through_refunds)."""

from typing import Any

import httpx

from tests.support.accounts import TestAccount
from tests.support.http import ok
from tests.support.platform import RunningPlatform

BEFORE_2022_11_15 = "2022-08-01"


def _request(
    platform: RunningPlatform,
    account: TestAccount,
    method: str,
    path: str,
    *,
    expand: tuple[str, ...] = (),
    version: str | None = None,
    data: dict[str, str] | None = None,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {account.secret_key}"}
    if version is not None:
        headers["Stripe-Version"] = version
    params = httpx.QueryParams([("expand[]", field) for field in expand])
    return httpx.request(
        method, platform.api_base + path, params=params, data=data, headers=headers, timeout=30
    )


def _paid_intent_with_a_refund(platform: RunningPlatform, account: TestAccount) -> Any:
    intent = ok(
        _request(
            platform,
            account,
            "POST",
            "/v1/payment_intents",
            data={
                "amount": "2000",
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "confirm": "true",
                "return_url": "https://example.com/back",
            },
        )
    )
    assert intent["status"] == "succeeded"
    refund = {"charge": intent["latest_charge"], "amount": "100"}
    ok(_request(platform, account, "POST", "/v1/refunds", data=refund))
    return intent


def test_before_2022_11_15_a_payment_intent_expands_its_charges_balance_transactions(
    platform: RunningPlatform, account: TestAccount
) -> None:
    intent = _paid_intent_with_a_refund(platform, account)
    body = ok(
        _request(
            platform,
            account,
            "GET",
            f"/v1/payment_intents/{intent['id']}",
            expand=("charges.data.balance_transaction", "customer"),
            version=BEFORE_2022_11_15,
        )
    )
    (charge,) = body["charges"]["data"]
    assert charge["id"] == intent["latest_charge"]
    txn = charge["balance_transaction"]
    assert (txn["object"], txn["source"], txn["fee"]) == ("balance_transaction", charge["id"], 88)
    assert isinstance(charge["refunds"]["data"][0]["balance_transaction"], str)


def test_before_2022_11_15_a_charge_expands_its_refunds_balance_transactions(
    platform: RunningPlatform, account: TestAccount
) -> None:
    intent = _paid_intent_with_a_refund(platform, account)
    charge = ok(
        _request(
            platform,
            account,
            "GET",
            f"/v1/charges/{intent['latest_charge']}",
            expand=("refunds.data.balance_transaction",),
            version=BEFORE_2022_11_15,
        )
    )
    (refund,) = charge["refunds"]["data"]
    assert refund["balance_transaction"]["object"] == "balance_transaction"
    assert refund["balance_transaction"]["source"] == refund["id"]


def test_before_2022_11_15_nested_old_fields_expand_through_an_expanded_object(
    platform: RunningPlatform, account: TestAccount
) -> None:
    intent = _paid_intent_with_a_refund(platform, account)
    body = ok(
        _request(
            platform,
            account,
            "GET",
            f"/v1/payment_intents/{intent['id']}",
            expand=("latest_charge.refunds.data.balance_transaction",),
            version=BEFORE_2022_11_15,
        )
    )
    (refund,) = body["latest_charge"]["refunds"]["data"]
    assert refund["balance_transaction"]["object"] == "balance_transaction"


def test_a_list_before_2022_11_15_expands_each_intents_charges(
    platform: RunningPlatform, account: TestAccount
) -> None:
    intent = _paid_intent_with_a_refund(platform, account)
    listed = ok(
        _request(
            platform,
            account,
            "GET",
            "/v1/payment_intents",
            expand=("data.charges.data.balance_transaction",),
            version=BEFORE_2022_11_15,
        )
    )
    (only,) = listed["data"]
    assert only["id"] == intent["id"]
    assert isinstance(only["charges"]["data"][0]["balance_transaction"], dict)


def test_at_the_latest_version_fields_old_versions_show_still_cannot_be_expanded(
    platform: RunningPlatform, account: TestAccount
) -> None:
    intent = _paid_intent_with_a_refund(platform, account)
    for path, field in (
        (f"/v1/payment_intents/{intent['id']}", "charges.data.balance_transaction"),
        (f"/v1/payment_intents/{intent['id']}", "no_such_field"),
    ):
        response = _request(platform, account, "GET", path, expand=(field,))
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["message"] == f"This property cannot be expanded ({field})."
        assert error["param"] == "expand"


def test_an_old_version_still_refuses_a_field_no_version_has(
    platform: RunningPlatform, account: TestAccount
) -> None:
    intent = _paid_intent_with_a_refund(platform, account)
    response = _request(
        platform,
        account,
        "GET",
        f"/v1/payment_intents/{intent['id']}",
        expand=("charges.data.no_such_field",),
        version=BEFORE_2022_11_15,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "expand"


def test_before_2022_11_15_a_charge_with_more_refunds_than_a_page_says_so(
    platform: RunningPlatform, account: TestAccount
) -> None:
    intent = _paid_intent_with_a_refund(platform, account)
    for _ in range(100):  # 101 refunds in all, one more than an embedded list holds
        refund = {"charge": intent["latest_charge"], "amount": "1"}
        ok(_request(platform, account, "POST", "/v1/refunds", data=refund))
    path = f"/v1/charges/{intent['latest_charge']}"
    charge = ok(_request(platform, account, "GET", path, version=BEFORE_2022_11_15))
    refunds = charge["refunds"]
    assert (len(refunds["data"]), refunds["has_more"], refunds["total_count"]) == (100, True, 101)


def test_old_versions_still_take_their_embedded_lists_as_paths_but_not_other_objects(
    platform: RunningPlatform, account: TestAccount
) -> None:
    """A list a version embeds (an intent's `charges`, a charge's `refunds`, a customer's
    `sources` before 2020-08-27) may be named, as it could be then; a hash or an object the
    answer holds anyway (`metadata`, a charge's `outcome`) cannot be expanded at any version."""
    intent = _paid_intent_with_a_refund(platform, account)
    customer = ok(_request(platform, account, "POST", "/v1/customers"))
    for version, path, field in (
        ("2020-08-27", f"/v1/payment_intents/{intent['id']}", "charges"),
        (BEFORE_2022_11_15, f"/v1/charges/{intent['latest_charge']}", "refunds"),
        ("2020-03-02", f"/v1/customers/{customer['id']}", "sources"),
    ):
        body = ok(_request(platform, account, "GET", path, expand=(field,), version=version))
        assert body[field]["object"] == "list"
    for field in ("metadata", "charges.data.outcome", "latest_charge.outcome"):
        response = _request(
            platform,
            account,
            "GET",
            f"/v1/payment_intents/{intent['id']}",
            expand=(field,),
            version="2020-08-27",
        )
        assert response.status_code == 400, (field, response.text)
        assert response.json()["error"]["param"] == "expand"
