"""`expand[]` is accepted and applied on every GET and POST endpoint, as Stripe does
(stripe-wire.md, section 5): balance transactions, the balance, payment methods, payouts and
reviews included. A path naming no expandable field is still a 400."""

from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import stripe

from tests.e2e.test_balance_and_payouts import capture
from tests.e2e.test_radar import add_rule, pay
from tests.support.accounts import TestAccount
from tests.support.http import ok
from tests.support.platform import RunningPlatform
from tests.support.postgres import WorkerDatabases


def _get(
    platform: RunningPlatform, account: TestAccount, path: str, *expand: str
) -> httpx.Response:
    return httpx.get(
        platform.api_base + path,
        params=[("expand[]", field) for field in expand],
        headers={"Authorization": f"Bearer {account.secret_key}"},
        timeout=30,
    )


def _post(
    platform: RunningPlatform, account: TestAccount, path: str, body: dict[str, str], *expand: str
) -> httpx.Response:
    form = [*body.items(), *(("expand[]", field) for field in expand)]
    return httpx.post(
        platform.api_base + path,
        content=urlencode(form),
        headers={
            "Authorization": f"Bearer {account.secret_key}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        timeout=30,
    )


def _cannot_expand(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "expand")


def test_a_balance_transaction_is_retrieved_with_its_source_expanded(
    client: stripe.StripeClient,
) -> None:
    intent = pay(client, "pm_card_visa")
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert isinstance(charge.balance_transaction, str)
    txn = client.v1.balance_transactions.retrieve(
        charge.balance_transaction, params={"expand": ["source"]}
    )
    assert not isinstance(txn.source, str)
    assert txn.source is not None
    assert txn.source.id == charge.id


def test_balance_transactions_are_listed_with_each_source_expanded_whatever_its_kind(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    intent = pay(client, "pm_card_visa")
    refund = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 500})
    listed = ok(_get(platform, account, "/v1/balance_transactions", "data.source"))
    sources = {txn["source"]["object"]: txn["source"]["id"] for txn in listed["data"]}
    assert sources == {"charge": intent.latest_charge, "refund": refund.id}


def _charge_and_payout_transactions(client: stripe.StripeClient) -> tuple[Any, Any]:
    """A payment made available at once and a payout of part of it: a page of balance
    transactions whose sources are a charge and a payout."""
    intent = pay(client, "pm_card_bypassPending", 5_000)
    payout = client.v1.payouts.create(params={"amount": 1_000, "currency": "usd"})
    return intent, payout


def test_a_path_through_a_transactions_source_leaves_a_source_without_the_field_as_it_is(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    """A balance transaction's `source` may be a charge, a refund, a payout or a dispute: a path
    going on through it to a field only some of them have (a charge's `payment_intent`) expands
    it where there is one and leaves the others as they are, as Stripe does, rather than
    refusing a page that happens to hold a payout's transaction."""
    intent, payout = _charge_and_payout_transactions(client)
    listed = ok(_get(platform, account, "/v1/balance_transactions", "data.source.payment_intent"))
    sources = {txn["source"]["object"]: txn["source"] for txn in listed["data"]}
    assert set(sources) == {"charge", "payout"}
    assert sources["charge"]["payment_intent"]["id"] == intent.id
    assert sources["payout"]["id"] == payout.id
    assert "payment_intent" not in sources["payout"]

    for path in ("data.source.refunds", "data.source.balance_transaction"):
        page = ok(_get(platform, account, "/v1/balance_transactions", path))
        by_kind = {txn["source"]["object"]: txn["source"] for txn in page["data"]}
        assert by_kind["charge"]["id"] == intent.latest_charge
        assert by_kind["payout"]["id"] == payout.id
    refunds_page = ok(_get(platform, account, "/v1/balance_transactions", "data.source.refunds"))
    [charge] = [t["source"] for t in refunds_page["data"] if t["source"]["object"] == "charge"]
    assert charge["refunds"]["object"] == "list"

    one = f"/v1/balance_transactions/{payout.balance_transaction}"
    retrieved = ok(_get(platform, account, one, "source.payment_intent"))
    assert retrieved["source"]["id"] == payout.id
    assert "payment_intent" not in retrieved["source"]

    payouts = ok(
        _get(platform, account, "/v1/payouts", "data.balance_transaction.source.payment_intent")
    )
    [listed_payout] = payouts["data"]
    assert listed_payout["balance_transaction"]["source"]["id"] == payout.id
    assert "payment_intent" not in listed_payout["balance_transaction"]["source"]


def test_a_path_through_a_transactions_source_to_a_field_no_source_has_is_refused(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    _charge_and_payout_transactions(client)
    for path in ("data.source.no_such_field", "data.source.amount"):
        refused = _get(platform, account, "/v1/balance_transactions", path)
        _cannot_expand(refused)
        assert refused.json()["error"]["message"] == f"This property cannot be expanded ({path})."


def test_the_sdk_pages_through_transactions_of_a_charge_and_a_payout_with_sources_expanded(
    client: stripe.StripeClient,
) -> None:
    """stripe-python's auto-paging asks each page with the same `expand[]`: every page
    answers, the one holding the payout's transaction too."""
    intent, payout = _charge_and_payout_transactions(client)
    pages = client.v1.balance_transactions.list(
        params={"limit": 1, "expand": ["data.source.payment_intent"]}
    )
    sources = [txn.source for txn in pages.auto_paging_iter()]
    charges = [s for s in sources if isinstance(s, stripe.Charge)]
    payouts = [s for s in sources if isinstance(s, stripe.Payout)]
    assert len(sources) == 2
    assert [(c.id, getattr(c.payment_intent, "id", None)) for c in charges] == [
        (intent.latest_charge, intent.id)
    ]
    assert [p.id for p in payouts] == [payout.id]


def test_a_payout_is_created_retrieved_listed_and_canceled_with_its_transaction_expanded(
    client: stripe.StripeClient,
    platform: RunningPlatform,
    account: TestAccount,
    databases: WorkerDatabases,
) -> None:
    capture(databases, account.id, "ch_e2e_expand_1", 5_000, bypass_pending=True)
    created = ok(
        _post(
            platform,
            account,
            "/v1/payouts",
            {"amount": "1000", "currency": "usd"},
            "balance_transaction",
        )
    )
    assert created["balance_transaction"]["object"] == "balance_transaction"
    one = f"/v1/payouts/{created['id']}"
    retrieved = ok(_get(platform, account, one, "balance_transaction"))
    assert retrieved["balance_transaction"]["id"] == created["balance_transaction"]["id"]
    listed = ok(_get(platform, account, "/v1/payouts", "data.balance_transaction"))
    assert [type(p["balance_transaction"]) for p in listed["data"]] == [dict]
    updated = ok(_post(platform, account, one, {"metadata[a]": "b"}, "balance_transaction"))
    assert isinstance(updated["balance_transaction"], dict)
    canceled = ok(_post(platform, account, one + "/cancel", {}, "balance_transaction"))
    assert canceled["balance_transaction"]["object"] == "balance_transaction"
    _cannot_expand(_get(platform, account, one, "amount"))


def test_a_payment_method_is_expanded_into_its_customer_by_every_endpoint(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    customer = client.v1.customers.create(params={"name": "Ada"}).id
    method = client.v1.payment_methods.create(
        params={"type": "card", "card": {"token": "tok_visa"}}
    ).id
    one = f"/v1/payment_methods/{method}"
    attached = ok(_post(platform, account, one + "/attach", {"customer": customer}, "customer"))
    assert attached["customer"]["id"] == customer
    assert ok(_get(platform, account, one, "customer"))["customer"]["id"] == customer
    updated = ok(_post(platform, account, one, {"metadata[a]": "b"}, "customer"))
    assert updated["customer"]["id"] == customer
    for path in (
        "/v1/payment_methods?customer=" + customer,
        f"/v1/customers/{customer}/payment_methods",
    ):
        listed = ok(_get(platform, account, path, "data.customer"))
        assert [m["customer"]["id"] for m in listed["data"]] == [customer]
    _cannot_expand(_get(platform, account, one, "type"))
    detached = ok(_post(platform, account, one + "/detach", {}, "customer"))
    assert detached["customer"] is None


def test_a_refund_names_its_charges_customer_and_payment_method_and_expands_them(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    customer = client.v1.customers.create(params={"payment_method": "pm_card_visa"})
    [method] = client.v1.payment_methods.list(params={"customer": customer.id}).data
    intent = client.v1.payment_intents.create(
        params={
            "amount": 1500,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": method.id,
            "confirm": True,
            "return_url": "https://shop.example/back",
        }
    )
    refund = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 300})
    assert (refund.customer, refund.payment_method) == (customer.id, method.id)

    one = f"/v1/refunds/{refund.id}"
    expanded = ok(_get(platform, account, one, "payment_method", "customer"))
    assert (expanded["payment_method"]["id"], expanded["payment_method"]["object"]) == (
        method.id,
        "payment_method",
    )
    assert expanded["customer"]["id"] == customer.id
    listed = ok(_get(platform, account, "/v1/refunds", "data.payment_method"))
    assert [r["payment_method"]["id"] for r in listed["data"]] == [method.id]


def test_a_review_is_expanded_into_its_payment_intent_by_every_endpoint(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    add_rule(client, "Review if :risk_level: = 'elevated'")
    intent = pay(client, "pm_card_riskLevelElevated", capture_method="manual")
    assert isinstance(intent.review, str)
    one = f"/v1/reviews/{intent.review}"
    retrieved = ok(_get(platform, account, one, "payment_intent", "charge"))
    assert (retrieved["payment_intent"]["id"], retrieved["charge"]["id"]) == (
        intent.id,
        intent.latest_charge,
    )
    listed = ok(_get(platform, account, "/v1/reviews", "data.payment_intent"))
    assert [r["payment_intent"]["id"] for r in listed["data"]] == [intent.id]
    expanded_intent = ok(_get(platform, account, f"/v1/payment_intents/{intent.id}", "review"))
    assert expanded_intent["review"]["id"] == intent.review
    approved = ok(_post(platform, account, one + "/approve", {}, "payment_intent"))
    assert approved["payment_intent"]["id"] == intent.id
    _cannot_expand(_get(platform, account, one, "reason"))


def test_a_review_closed_with_expand_shows_its_charge(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    add_rule(client, "Review if :risk_level: = 'elevated'")
    intent = pay(client, "pm_card_riskLevelElevated", capture_method="manual")
    closed = ok(
        _post(
            platform, account, f"/v1/reviews/{intent.review}/close", {"action": "cancel"}, "charge"
        )
    )
    assert closed["charge"]["id"] == intent.latest_charge


def test_the_balance_takes_expand_and_refuses_a_field_that_names_no_object(
    platform: RunningPlatform, account: TestAccount
) -> None:
    """The balance has nothing to expand: `expand` is a parameter it takes (not an unknown
    one), and every path is refused as naming no object, its arrays included."""
    for field in ("available", "livemode", "no_such_field"):
        refused = _get(platform, account, "/v1/balance", field)
        _cannot_expand(refused)
        message = refused.json()["error"]["message"]
        assert message == f"This property cannot be expanded ({field})."


def test_an_object_or_array_shown_already_cannot_be_expanded(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    """Expanding is for ids, and for what only expanding shows (a charge's `refunds`): a hash,
    an object or a list the answer holds anyway names nothing to expand, and Stripe refuses
    it as it refuses a number, before any work is done."""
    intent = pay(client, "pm_card_visa")
    one = f"/v1/payment_intents/{intent.id}"
    for field in (
        "metadata",
        "shipping",
        "amount_details",
        "payment_method_types",
        "latest_charge.outcome",
        "latest_charge.payment_method_details.card",
    ):
        refused = _get(platform, account, one, field)
        _cannot_expand(refused)
        error = refused.json()["error"]
        assert (error["message"], error["code"]) == (
            f"This property cannot be expanded ({field}).",
            "parameter_invalid",
        )
    refused = _post(platform, account, "/v1/payment_intents", {"amount": "1000",
                    "currency": "usd"}, "metadata")  # fmt: skip
    _cannot_expand(refused)
    assert client.v1.payment_intents.list(params={"limit": 100}).data[0].id == intent.id
    # What only expanding shows still may be asked for, at any depth.
    charge = ok(_get(platform, account, f"/v1/charges/{intent.latest_charge}", "refunds"))
    assert charge["refunds"]["object"] == "list"
    expanded = ok(_get(platform, account, one, "latest_charge.refunds"))
    assert expanded["latest_charge"]["refunds"]["object"] == "list"


def test_a_webhook_endpoint_has_nothing_to_expand_and_says_so(
    platform: RunningPlatform, account: TestAccount
) -> None:
    body = {"url": "https://example.com/hook", "enabled_events[0]": "*"}
    endpoint = ok(_post(platform, account, "/v1/webhook_endpoints", body))
    _cannot_expand(_get(platform, account, f"/v1/webhook_endpoints/{endpoint['id']}", "url"))
    _cannot_expand(_get(platform, account, "/v1/webhook_endpoints", "data.url"))


def test_an_event_expands_only_its_data_and_request_which_are_objects_already(
    client: stripe.StripeClient,
) -> None:
    """Stripe's Event has two expandable fields, `data` and `request`, both always objects:
    expanding them changes nothing. The resource in `data.object` is as it was when the event
    happened, and nothing in it can be expanded (the spec's NotificationEventData has no
    expandable field): Stripe's 400 for a field that cannot be expanded, never a silent no."""
    intent = pay(client, "pm_card_visa")
    [event] = client.v1.events.list(params={"type": "payment_intent.succeeded"}).data
    assert event.data.object["latest_charge"] == intent.latest_charge

    plain = client.v1.events.retrieve(event.id).to_dict()
    assert client.v1.events.retrieve(
        event.id, params={"expand": ["data", "request"]}
    ).to_dict() == (plain)
    listed = client.v1.events.list(
        params={"type": "payment_intent.succeeded", "expand": ["data.data", "data.request"]}
    )
    assert [e.to_dict() for e in listed.data] == [plain]

    for path in ("data.object.latest_charge", "data.object", "data.previous_attributes", "type"):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.events.retrieve(event.id, params={"expand": [path]})
        assert (refused.value.http_status, refused.value.param) == (400, "expand")
        assert str(refused.value.user_message) == f"This property cannot be expanded ({path})."
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.events.list(params={"expand": ["data.data.object.latest_charge"]})
    assert (refused.value.http_status, refused.value.param) == (400, "expand")
