"""Customer and PaymentMethod updates and listings, as Stripe's SDK and raw form posts make them."""

import httpx
import pytest
import stripe

from tests.support.accounts import TestAccount
from tests.support.http import ok
from tests.support.platform import RunningPlatform


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

    assert updated.billing_details.address is None
    assert updated.billing_details.name == "Ada Lovelace"
    assert client.v1.payment_methods.retrieve(method.id).billing_details.address is None


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


def test_an_empty_address_clears_a_customers_whole_address(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(
        params={"address": {"line1": "2 Rue Royale", "city": "Paris", "country": "FR"}}
    )

    updated = client.v1.customers.update(customer.id, params={"address": ""})

    assert updated.address is None
    assert client.v1.customers.retrieve(customer.id).address is None


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
