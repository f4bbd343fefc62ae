from remit.core.jsonview import to_json
from remit.versioning import render
from tests.support import resources
from tests.support.versions import top_level_difference, version_before
from versions.v2014_06_17 import TurnChargeRefundsIntoAList

AT = "2014-06-17"
BEFORE = version_before(AT)
RELATED = resources.related_lists()


def test_a_charges_refunds_are_an_array_before_2014_06_17_and_a_list_from_it() -> None:
    charge = to_json(resources.charge())
    charge.pop("refunds")  # the facade leaves the key out unless expanded
    before, at = render(charge, BEFORE, RELATED), render(charge, AT, RELATED)
    assert TurnChargeRefundsIntoAList.version == AT
    refund = to_json(resources.refund())
    assert top_level_difference(before, at) == {
        "refunds": (
            [refund],
            {
                "object": "list",
                "data": [refund],
                "has_more": False,
                "total_count": 1,
                "url": "/v1/charges/ch_3Example/refunds",
            },
        )
    }


def test_refunds_the_client_expanded_are_an_array_too_before_2014_06_17() -> None:
    charge = to_json(resources.charge())
    refund = to_json(resources.refund())
    charge["refunds"] = {"object": "list", "data": [refund], "has_more": False, "url": "/x"}
    assert render(charge, BEFORE, RELATED)["refunds"] == [refund]


def test_the_embedded_charges_of_a_payment_intent_have_refund_arrays_before_2014_06_17() -> None:
    rendered = render(to_json(resources.payment_intent()), BEFORE, RELATED)
    charges = rendered["charges"]
    assert isinstance(charges, dict)
    data = charges["data"]
    assert isinstance(data, list)
    assert len(data) == 1
    charge = data[0]
    assert isinstance(charge, dict)
    assert charge["refunds"] == [to_json(resources.refund())]
