from remit.core.jsonview import to_json
from remit.versioning import render
from remit_api.payments.v1 import payments_pb2 as pb
from tests.support import resources
from tests.support.versions import top_level_difference, version_before
from versions.v2015_02_18 import ReplaceChargeCardWithSource, ReplaceCustomerCardsWithSources

AT = "2015-02-18"
BEFORE = version_before(AT)
RELATED = resources.related_lists()


def test_a_charge_has_a_null_card_before_2015_02_18() -> None:
    charge = to_json(resources.charge(status=pb.CHARGE_STATUS_PENDING))  # keeps its status
    before, at = render(charge, BEFORE, RELATED), render(charge, AT, RELATED)
    assert ReplaceChargeCardWithSource.version == AT
    assert top_level_difference(before, at) == {"card": (None, "<absent>")}


def test_a_customer_has_cards_beside_its_sources_before_2015_02_18() -> None:
    customer = to_json(resources.customer())
    before, at = render(customer, BEFORE), render(customer, AT)
    assert ReplaceCustomerCardsWithSources.version == AT
    assert top_level_difference(before, at) == {
        "cards": (
            {
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": "/v1/customers/cus_1/cards",
            },
            "<absent>",
        ),
        "default_card": (None, "<absent>"),
    }
    # The lists of 2020-08-27 and before are there at both versions.
    assert before["sources"] == at["sources"]


def test_partial_and_deleted_customers_get_no_cards_before_2015_02_18() -> None:
    deleted = to_json(pb.DeletedCustomer(id="cus_1", deleted=True))
    assert render(deleted, BEFORE) == deleted
    event = to_json(
        resources.event(
            to_json(resources.customer()),
            previous_attributes={"email": "old@b.test"},
            event_type="customer.updated",
        )
    )
    data = render(event, BEFORE)["data"]
    assert isinstance(data, dict)
    assert data["previous_attributes"] == {"email": "old@b.test"}
