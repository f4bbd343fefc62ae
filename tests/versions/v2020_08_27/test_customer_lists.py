from remit.core.jsonview import to_json
from remit.versioning import render, render_event
from remit_api.payments.v1 import payments_pb2 as pb
from tests.support import resources
from tests.support.versions import top_level_difference, version_before
from versions.v2020_08_27 import StopAutoexpandingCustomerLists

AT = "2020-08-27"
BEFORE = version_before(AT)


def _empty(customer_id: str, name: str) -> dict[str, object]:
    return {
        "object": "list",
        "data": [],
        "has_more": False,
        "total_count": 0,
        "url": f"/v1/customers/{customer_id}/{name}",
    }


def test_a_customer_embeds_sources_subscriptions_and_tax_ids_before_2020_08_27() -> None:
    customer = to_json(resources.customer(id="cus_9"))
    before, at = render(customer, BEFORE), render(customer, AT)
    assert StopAutoexpandingCustomerLists.version == AT
    assert top_level_difference(before, at) == {
        name: (_empty("cus_9", name), "<absent>")
        for name in ("sources", "subscriptions", "tax_ids")
    }


def test_a_deleted_customer_embeds_no_lists_before_2020_08_27() -> None:
    deleted = to_json(pb.DeletedCustomer(id="cus_1", deleted=True))
    assert render(deleted, BEFORE) == deleted


def test_customer_events_before_2020_08_27_embed_the_lists_in_the_object_only() -> None:
    event = to_json(
        resources.event(
            to_json(resources.customer()),
            previous_attributes={"email": "old@b.test"},
            event_type="customer.updated",
        )
    )
    data = render_event(event, BEFORE)["data"]
    assert isinstance(data, dict)
    customer = data["object"]
    assert isinstance(customer, dict)
    assert customer["sources"] == _empty("cus_1", "sources")
    assert data["previous_attributes"] == {"email": "old@b.test"}
