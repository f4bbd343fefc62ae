"""Customers and PaymentMethods updated, listed and retrieved, as Stripe's SDK and raw form posts
ask for them."""

import re

import httpx
import psycopg
import pytest
import stripe

from remit.worker.runner import libpq_url
from tests.support.accounts import TestAccount, create_account
from tests.support.http import ok
from tests.support.platform import RunningPlatform
from tests.support.postgres import WorkerDatabases


def _post(platform: RunningPlatform, account: TestAccount, path: str, body: str) -> httpx.Response:
    return httpx.post(
        f"{platform.api_base}{path}",
        content=body,
        headers={
            "Authorization": f"Bearer {account.secret_key}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )


def test_an_empty_billing_address_clears_a_payment_methods_address(
    client: stripe.StripeClient,
) -> None:
    customer = client.v1.customers.create()
    method = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"token": "tok_visa"},
            "billing_details": {
                "name": "Ada Lovelace",
                "address": {"line1": "12 St James's Sq", "city": "London", "country": "GB"},
            },
        }
    )
    client.v1.payment_methods.attach(method.id, params={"customer": customer.id})

    updated = client.v1.payment_methods.update(
        method.id, params={"billing_details": {"address": ""}}
    )

    # Every part cleared: Stripe still shows the address, each part null.
    cleared = dict.fromkeys(("city", "country", "line1", "line2", "postal_code", "state"))
    retrieved = client.v1.payment_methods.retrieve(method.id)
    for address in (updated.billing_details.address, retrieved.billing_details.address):
        assert address is not None
        assert address.to_dict() == cleared
    assert updated.billing_details.name == "Ada Lovelace"


def test_one_empty_address_part_clears_only_that_part_of_a_customers_address(
    platform: RunningPlatform, account: TestAccount, client: stripe.StripeClient
) -> None:
    customer = client.v1.customers.create(
        params={
            "address": {
                "line1": "2 Rue Royale",
                "line2": "Bâtiment B",
                "city": "Paris",
                "country": "FR",
            }
        }
    )

    updated = ok(_post(platform, account, f"/v1/customers/{customer.id}", "address[line2]="))

    assert updated["address"] == {
        "city": "Paris",
        "country": "FR",
        "line1": "2 Rue Royale",
        "line2": None,
        "postal_code": None,
        "state": None,
    }


def test_address_parts_given_on_a_customer_update_merge_into_the_stored_address(
    client: stripe.StripeClient,
) -> None:
    """Stripe updates a customer "by setting the values of the parameters passed. Any
    parameters not provided will be left unchanged" (its API reference for the customer
    update); each part of a hash is such a parameter, as for a payment method's
    `billing_details`."""
    customer = client.v1.customers.create(
        params={"address": {"line1": "2 Rue Royale", "city": "Paris", "country": "FR"}}
    )

    updated = client.v1.customers.update(customer.id, params={"address": {"postal_code": "75008"}})

    assert updated.address is not None
    assert (
        updated.address.line1,
        updated.address.city,
        updated.address.country,
        updated.address.postal_code,
    ) == ("2 Rue Royale", "Paris", "FR", "75008")


def test_shipping_fields_given_on_a_customer_update_merge_into_the_stored_shipping(
    platform: RunningPlatform, account: TestAccount, client: stripe.StripeClient
) -> None:
    """The rule of the address above, for `shipping` (whose name and address Stripe requires
    on every update): the fields and address parts not given stay."""
    customer = client.v1.customers.create(
        params={
            "shipping": {
                "name": "Ada Lovelace",
                "phone": "+33 1 23 45 67 89",
                "address": {"line1": "2 Rue Royale", "city": "Paris", "country": "FR"},
            }
        }
    )

    updated = ok(
        _post(
            platform,
            account,
            f"/v1/customers/{customer.id}",
            "shipping[name]=Ada+King&shipping[address][city]=Nice",
        )
    )

    expected = {
        "name": "Ada King",
        "phone": "+33 1 23 45 67 89",
        "address": {
            "city": "Nice",
            "country": "FR",
            "line1": "2 Rue Royale",
            "line2": None,
            "postal_code": None,
            "state": None,
        },
        "carrier": None,
        "tracking_number": None,
    }
    assert updated["shipping"] == expected
    retrieved = client.v1.customers.retrieve(customer.id)
    assert retrieved.shipping is not None
    assert retrieved.shipping.to_dict() == expected


def test_an_empty_address_clears_a_customers_whole_address(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(
        params={"address": {"line1": "2 Rue Royale", "city": "Paris", "country": "FR"}}
    )

    updated = client.v1.customers.update(customer.id, params={"address": ""})

    assert updated.address is None
    assert client.v1.customers.retrieve(customer.id).address is None


def test_preferred_locales_are_replaced_never_unset(
    platform: RunningPlatform, account: TestAccount, client: stripe.StripeClient
) -> None:
    """As at Stripe, whose spec gives a customer update's `preferred_locales` no empty value
    (stripe-python types it `List[str]`, where every parameter that may be unset with `""` is
    `Literal['']|...`): `preferred_locales=` is parameter_invalid_empty, and an empty list,
    which the SDK sends as nothing at all, leaves them as they are."""
    customer = client.v1.customers.create(params={"preferred_locales": ["fr-FR", "en"]})

    kept = client.v1.customers.update(customer.id, params={"preferred_locales": []})
    assert kept.preferred_locales == ["fr-FR", "en"]
    replaced = client.v1.customers.update(customer.id, params={"preferred_locales": ["de"]})
    assert replaced.preferred_locales == ["de"]
    refused = _post(platform, account, f"/v1/customers/{customer.id}", "preferred_locales=")
    assert refused.status_code == 400
    assert (refused.json()["error"]["code"], refused.json()["error"]["param"]) == (
        "parameter_invalid_empty",
        "preferred_locales",
    )
    assert client.v1.customers.retrieve(customer.id).preferred_locales == ["de"]


def test_deleting_every_customer_while_paging_through_them_reaches_them_all(
    client: stripe.StripeClient,
) -> None:
    created = {client.v1.customers.create(params={"name": f"n{i}"}).id for i in range(5)}

    deleted = set()
    for customer in client.v1.customers.list(params={"limit": 2}).auto_paging_iter():
        client.v1.customers.delete(customer.id)
        deleted.add(customer.id)

    assert deleted == created
    assert client.v1.customers.list().data == []


def test_a_customer_takes_text_as_long_as_stripe_allows(client: stripe.StripeClient) -> None:
    description = "d" * 5000
    line1 = "1" * 5000

    customer = client.v1.customers.create(
        params={"description": description, "address": {"line1": line1}}
    )

    assert customer.description == description
    assert customer.address is not None
    assert customer.address.line1 == line1


def test_text_longer_than_stripe_allows_is_refused_by_name(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.customers.create(params={"address": {"city": "c" * 5001}})
    assert (refused.value.http_status, refused.value.param) == (400, "address[city]")

    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.customers.create(params={"description": "d" * 5001})
    assert (refused.value.http_status, refused.value.param) == (400, "description")


def _saved_card(client: stripe.StripeClient) -> tuple[str, str]:
    """A customer with a card attached: (customer id, payment method id)."""
    customer = client.v1.customers.create(params={"payment_method": "pm_card_visa"})
    [method] = client.v1.customers.payment_methods.list(customer.id).data
    return customer.id, method.id


def test_listing_a_payment_method_type_remit_does_not_keep_is_an_empty_list(
    platform: RunningPlatform, account: TestAccount, client: stripe.StripeClient
) -> None:
    customer_id, _ = _saved_card(client)

    of_customer = client.v1.customers.payment_methods.list(
        customer_id, params={"type": "us_bank_account"}
    )
    listed = client.v1.payment_methods.list(params={"customer": customer_id, "type": "sepa_debit"})

    assert (of_customer.data, of_customer.has_more) == ([], False)
    assert (listed.data, listed.has_more) == ([], False)
    assert (
        len(client.v1.payment_methods.list(params={"customer": customer_id, "type": "card"}).data)
        == 1
    )


def test_payment_methods_are_listed_by_allow_redisplay(client: stripe.StripeClient) -> None:
    """Both lists take Stripe's `allow_redisplay` filter; a payment method created without
    one is `unspecified`."""
    customer_id, unspecified = _saved_card(client)
    always = client.v1.payment_methods.create(
        params={"type": "card", "card": {"token": "tok_visa"}, "allow_redisplay": "always"}
    ).id
    client.v1.payment_methods.attach(always, params={"customer": customer_id})

    def of_customer(value: str) -> list[str]:
        listed = client.v1.customers.payment_methods.list(
            customer_id, params={"allow_redisplay": value}
        )
        return [method.id for method in listed.data]

    def of_all(value: str) -> list[str]:
        listed = client.v1.payment_methods.list(
            params={"customer": customer_id, "allow_redisplay": value}
        )
        return [method.id for method in listed.data]

    for listing in (of_customer, of_all):
        assert listing("always") == [always]
        assert listing("unspecified") == [unspecified]
        assert listing("limited") == []
    with pytest.raises(stripe.InvalidRequestError) as refused:
        of_customer("sometimes")
    assert (refused.value.http_status, refused.value.param) == (400, "allow_redisplay")


def test_listing_a_payment_method_type_stripe_does_not_know_is_refused(
    client: stripe.StripeClient,
) -> None:
    customer_id, _ = _saved_card(client)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.customers.payment_methods.list(customer_id, params={"type": "carrier_pigeon"})
    assert (refused.value.http_status, refused.value.param) == (400, "type")


def test_a_customers_payment_method_is_retrieved_through_the_customer(
    client: stripe.StripeClient,
) -> None:
    customer_id, method_id = _saved_card(client)

    method = client.v1.customers.payment_methods.retrieve(customer_id, method_id)

    assert (method.id, method.customer, method.type) == (method_id, customer_id, "card")


def test_another_customers_payment_method_is_missing_through_this_customer(
    client: stripe.StripeClient,
) -> None:
    _, method_id = _saved_card(client)
    stranger = client.v1.customers.create().id
    loose = client.v1.payment_methods.create(params={"type": "card", "card": {"token": "tok_visa"}})

    for other in (method_id, loose.id, "pm_nope"):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.customers.payment_methods.retrieve(stranger, other)
        assert (refused.value.http_status, refused.value.code) == (404, "resource_missing")
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.customers.payment_methods.retrieve("cus_nope", method_id)
    assert (refused.value.http_status, refused.value.code) == (404, "resource_missing")


def test_a_test_id_through_a_customer_is_missing_and_makes_no_payment_method(
    databases: WorkerDatabases, account: TestAccount, client: stripe.StripeClient
) -> None:
    customer = client.v1.customers.create()
    stored = _payment_methods_stored(databases, account.id)

    for _ in range(3):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.customers.payment_methods.retrieve(customer.id, "pm_card_visa")
        error = refused.value.error
        assert error is not None
        assert (refused.value.http_status, error.code, error.param, error.message) == (
            404,
            "resource_missing",
            "payment_method",
            "No such PaymentMethod: 'pm_card_visa'",
        )

    assert _payment_methods_stored(databases, account.id) == stored


def test_a_two_digit_expiry_year_updates_a_card_as_it_creates_one(
    client: stripe.StripeClient,
) -> None:
    _, method_id = _saved_card(client)

    updated = client.v1.payment_methods.update(
        method_id, params={"card": {"exp_month": 7, "exp_year": 34}}
    )

    assert updated.card is not None
    assert (updated.card.exp_month, updated.card.exp_year) == (7, 2034)


def _payment_methods_stored(databases: WorkerDatabases, account_id: str) -> int:
    with psycopg.connect(libpq_url(databases.core_url), autocommit=True) as db:
        row = db.execute(
            "SELECT count(*) FROM payment_methods WHERE account_id = %s", (account_id,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_retrieved_test_id_is_a_payment_method_of_its_own(
    databases: WorkerDatabases, account: TestAccount, client: stripe.StripeClient
) -> None:
    method = client.v1.payment_methods.retrieve("pm_card_mastercard")
    customer = client.v1.customers.create()
    attached = client.v1.payment_methods.attach(method.id, params={"customer": customer.id})
    intent = client.v1.payment_intents.create(
        params={
            "amount": 1200,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": method.id,
            "confirm": True,
            "return_url": "https://shop.example/back",
        }
    )

    # As Stripe's: retrieving a test id makes a payment method with an id of its own, which
    # later calls name like any other.
    assert method.id.startswith("pm_")
    assert method.id != "pm_card_mastercard"
    assert (attached.id, attached.customer) == (method.id, customer.id)
    assert attached.card is not None
    assert attached.card.last4 == "4444"
    assert (intent.status, intent.payment_method) == ("succeeded", method.id)
    assert _payment_methods_stored(databases, account.id) == 1


def test_a_saved_cards_new_expiry_and_billing_address_are_what_its_next_payment_sends(
    platform: RunningPlatform, databases: WorkerDatabases
) -> None:
    """The vault sends a card's expiry and billing address with each authorization: updated on
    the PaymentMethod, they reach the vault, so the acquirer sees the reissued card's expiry
    (it declines an expired one) and checks the new address."""
    account = create_account(platform.core, token=platform.internal_token, raw_card_access=True)
    client = stripe.StripeClient(
        account.secret_key, base_addresses={"api": platform.api_base}, max_network_retries=0
    )
    customer = client.v1.customers.create()
    method = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": UPDATED_CARD, "exp_month": 12, "exp_year": 2030, "cvc": CVC},
            "billing_details": {"name": "Ada Lovelace"},
        }
    )
    client.v1.payment_methods.attach(method.id, params={"customer": customer.id})

    updated = client.v1.payment_methods.update(
        method.id,
        params={
            "card": {"exp_month": 3, "exp_year": 2033},
            "billing_details": {"address": {"line1": "12 New St", "postal_code": "10001"}},
        },
    )
    intent = client.v1.payment_intents.create(
        params={
            "amount": 1500, "currency": "usd", "customer": customer.id,
            "payment_method": method.id, "confirm": True,
            "return_url": "https://shop.example/back",
        }
    )  # fmt: skip

    assert updated.card is not None
    assert (updated.card.exp_month, updated.card.exp_year) == (3, 2033)
    assert _vault_card_of(databases, method.id) == (
        3, 2033, {"name": "Ada Lovelace", "address": {"line1": "12 New St", "postal_code": "10001"}}
    )  # fmt: skip
    assert intent.status == "succeeded"
    assert isinstance(intent.latest_charge, str)
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert charge.payment_method_details is not None
    assert charge.payment_method_details.card is not None
    checks = charge.payment_method_details.card.checks
    assert checks is not None
    assert (checks.address_line1_check, checks.address_postal_code_check) == ("pass", "pass")
    assert _authorized_expiries(databases, account.id) == [(3, 2033)]
    log = platform.log_text()
    assert UPDATED_CARD not in log
    # The CVC as a value of its own, not the milliseconds of a log line's timestamp.
    assert re.search(rf"""(?:["'=]|: ){CVC}(?![0-9A-Za-z])""", log) is None


UPDATED_CARD = "5555555555554444"
CVC = "739"


def _vault_card_of(databases: WorkerDatabases, method_id: str) -> tuple[int, int, object]:
    """The expiry and billing details the vault holds for the payment method's card."""
    with psycopg.connect(libpq_url(databases.core_url), autocommit=True) as db:
        found = db.execute(
            "SELECT vault_token FROM payment_methods WHERE id = %s", (method_id,)
        ).fetchone()
    assert found is not None
    with psycopg.connect(libpq_url(databases.vault_url), autocommit=True) as db:
        row = db.execute(
            "SELECT exp_month, exp_year, billing_details FROM cards WHERE token = %s", (found[0],)
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), row[2]


def _authorized_expiries(databases: WorkerDatabases, account_id: str) -> list[tuple[int, int]]:
    """The expiries the acquirer received in the account's authorizations."""
    with psycopg.connect(libpq_url(databases.acquirer_url), autocommit=True) as db:
        rows = db.execute(
            "SELECT exp_month, exp_year FROM authorizations WHERE merchant_id = %s", (account_id,)
        ).fetchall()
    return [(int(month), int(year)) for month, year in rows]
