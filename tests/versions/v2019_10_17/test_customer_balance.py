from typing import cast

from remit.core.jsonview import JsonObject, to_json
from remit.versioning import render, render_event
from remit_api.payments.v1 import payments_pb2 as pb
from tests.support import resources
from tests.support.versions import top_level_difference, version_before
from versions.v2019_10_17 import RenameCustomerAccountBalance

AT = "2019-10-17"
BEFORE = version_before(AT)


def test_a_customer_has_account_balance_before_2019_10_17_and_balance_from_it() -> None:
    customer = to_json(resources.customer())
    before, at = render(customer, BEFORE), render(customer, AT)
    assert RenameCustomerAccountBalance.version == AT
    assert top_level_difference(before, at) == {
        "balance": ("<absent>", 0),
        "account_balance": (0, "<absent>"),
    }


def test_a_customer_expanded_on_a_charge_has_account_balance_before_2019_10_17() -> None:
    charge = to_json(resources.charge())
    charge["customer"] = to_json(resources.customer())
    rendered = render(charge, BEFORE, resources.related_lists())["customer"]
    assert isinstance(rendered, dict)
    assert (rendered.get("account_balance"), "balance" in rendered) == (0, False)


def test_a_deleted_customer_is_the_same_before_2019_10_17() -> None:
    deleted = to_json(pb.DeletedCustomer(id="cus_1", deleted=True))
    assert render(deleted, BEFORE) == deleted


def test_customer_events_before_2019_10_17_say_account_balance_in_object_and_changes() -> None:
    event = to_json(
        resources.event(
            to_json(resources.customer()),
            previous_attributes={"balance": -500, "email": "old@b.test"},
            event_type="customer.updated",
        )
    )
    data = cast(JsonObject, render_event(event, BEFORE)["data"])
    customer = cast(JsonObject, data["object"])
    assert (customer["account_balance"], "balance" in customer) == (0, False)
    assert data["previous_attributes"] == {"account_balance": -500, "email": "old@b.test"}
    at = cast(JsonObject, render_event(event, AT)["data"])
    assert at["previous_attributes"] == {"balance": -500, "email": "old@b.test"}
