"""`expand[]` on an id of Stripe's that names an object remit does not serve (a customer's
`default_source`, a charge's `application_fee`): remit never fills it, and expanding leaves
its null as it is, or shows the null where the key was left out (a charge's `transfer`); an id
there would be refused, never handed back as if expanded. A customer's lists, shown only when
expanded, are empty."""

import asyncio
from typing import Any, cast

import pytest

from remit.core.jsonview import JsonObject
from remit.rest import routes
from remit.rest.errors import StripeError
from remit.rest.expand import expand

assert routes  # imported for the resources it registers with `expand`

_NO_CONTEXT: Any = None
_NO_DEPS: object = None


def _expanded(obj: JsonObject, *paths: str) -> JsonObject:
    asyncio.run(expand(obj, paths, cast(Any, _NO_CONTEXT), _NO_DEPS))
    return obj


@pytest.mark.parametrize(
    ("obj", "path"),
    [
        ({"object": "customer", "id": "cus_1", "default_source": None}, "default_source"),
        ({"object": "customer", "id": "cus_1", "test_clock": None}, "test_clock"),
        ({"object": "payment_intent", "id": "pi_1", "on_behalf_of": None}, "on_behalf_of"),
        ({"object": "charge", "id": "ch_1", "application_fee": None}, "application_fee"),
        ({"object": "refund", "id": "re_1", "transfer_reversal": None}, "transfer_reversal"),
        ({"object": "payout", "id": "po_1", "destination": None}, "destination"),
    ],
)
def test_a_null_id_remit_never_fills_stays_null(obj: JsonObject, path: str) -> None:
    before = dict(obj)
    assert _expanded(obj, path) == before


def test_a_charges_transfer_which_remit_leaves_out_is_null_once_expanded() -> None:
    """A non-destination charge has no `transfer`; asked for it, the client finds the key,
    null, as it finds any field Stripe shows only when expanded."""
    charge: JsonObject = {"object": "charge", "id": "ch_1", "amount": 500}
    assert _expanded(charge, "transfer") == {
        "object": "charge",
        "id": "ch_1",
        "amount": 500,
        "transfer": None,
    }


def test_a_listed_charges_transfer_is_null_once_expanded() -> None:
    listed: JsonObject = {
        "object": "list",
        "data": [{"object": "charge", "id": "ch_1"}, {"object": "charge", "id": "ch_2"}],
        "has_more": False,
        "url": "/v1/charges",
    }
    _expanded(listed, "data.transfer")
    assert listed["data"] == [
        {"object": "charge", "id": "ch_1", "transfer": None},
        {"object": "charge", "id": "ch_2", "transfer": None},
    ]


@pytest.mark.parametrize(
    ("obj", "path"),
    [
        ({"object": "payout", "id": "po_1", "destination": "ba_1"}, "destination"),
        ({"object": "customer", "id": "cus_1", "default_source": "card_1"}, "default_source"),
        ({"object": "charge", "id": "ch_1", "transfer": "tr_1"}, "transfer"),
    ],
)
def test_an_id_where_remit_never_fills_one_is_refused_not_handed_back(
    obj: JsonObject, path: str
) -> None:
    with pytest.raises(StripeError) as refused:
        _expanded(obj, path)
    assert (refused.value.http_status, refused.value.param) == (400, "expand")
    assert refused.value.message == f"This property cannot be expanded ({path})."


@pytest.mark.parametrize("name", ["sources", "subscriptions", "tax_ids"])
def test_a_customers_list_shown_only_when_expanded_is_empty(name: str) -> None:
    customer = _expanded({"object": "customer", "id": "cus_1"}, name)
    assert customer[name] == {
        "object": "list",
        "data": [],
        "has_more": False,
        "url": f"/v1/customers/cus_1/{name}",
    }


def test_a_deleted_customers_stub_gets_nothing_a_path_names() -> None:
    """An intent's customer, since deleted, expands to Stripe's stub, which has no field a
    path could go on into: the stub stays as it is, neither a 400 nor a made-up list."""
    stub: JsonObject = {"object": "customer", "id": "cus_1", "deleted": True}
    intent: JsonObject = {"object": "payment_intent", "id": "pi_1", "customer": stub}
    _expanded(intent, "customer.default_source", "customer.sources")
    assert intent["customer"] == {"object": "customer", "id": "cus_1", "deleted": True}
