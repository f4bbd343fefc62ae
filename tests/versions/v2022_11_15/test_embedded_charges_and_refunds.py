from collections.abc import Mapping, Sequence

import pytest

from remit.core.jsonview import JsonObject, to_json
from remit.versioning import (
    Need,
    RelatedDataMissingError,
    RelatedPage,
    gather_related,
    one_by_one,
    render,
)
from remit_api.payments.v1 import payments_pb2 as pb
from tests.support import resources
from tests.support.versions import top_level_difference, version_before
from versions.v2022_11_15 import (
    CHARGES_OF_PAYMENT_INTENT,
    REFUNDS_OF_CHARGE,
    RemovePaymentIntentCharges,
    StopAutoexpandingChargeRefunds,
)

AT = "2022-11-15"
BEFORE = version_before(AT)
RELATED = resources.related_lists()


def test_a_payment_intent_lists_its_charges_before_2022_11_15() -> None:
    intent = to_json(resources.payment_intent())
    before, at = render(intent, BEFORE, RELATED), render(intent, AT, RELATED)
    assert RemovePaymentIntentCharges.version == AT
    charge = render(to_json(resources.charge()), BEFORE, RELATED)
    assert top_level_difference(before, at) == {
        "charges": (
            {
                "object": "list",
                "data": [charge],
                "has_more": False,
                "total_count": 1,
                "url": "/v1/charges?payment_intent=pi_3Example",
            },
            "<absent>",
        )
    }


def test_an_intent_without_a_latest_charge_lists_no_charges_and_needs_no_lookup() -> None:
    intent = to_json(resources.payment_intent(latest_charge=None))
    charges = render(intent, BEFORE)["charges"]
    assert isinstance(charges, dict)
    assert (charges["data"], charges["total_count"]) == ([], 0)


def test_a_charge_carries_its_refunds_before_2022_11_15() -> None:
    charge = to_json(resources.charge())
    charge.pop("refunds")  # the facade leaves the key out unless expanded
    before, at = render(charge, BEFORE, RELATED), render(charge, AT, RELATED)
    assert StopAutoexpandingChargeRefunds.version == AT
    assert top_level_difference(before, at) == {
        "refunds": (
            {
                "object": "list",
                "data": [to_json(resources.refund())],
                "has_more": False,
                "total_count": 1,
                "url": "/v1/charges/ch_3Example/refunds",
            },
            "<absent>",
        )
    }


def test_refunds_the_client_expanded_are_kept_as_they_are() -> None:
    charge = to_json(resources.charge())
    expanded: JsonObject = {"object": "list", "data": [], "has_more": False, "url": "/x"}
    charge["refunds"] = expanded
    assert render(charge, BEFORE)["refunds"] == expanded


def test_rendering_without_the_related_lists_fails_loudly() -> None:
    with pytest.raises(RelatedDataMissingError):
        render(to_json(resources.payment_intent()), BEFORE)


@pytest.mark.anyio
async def test_gathering_fetches_the_charges_of_an_intent_and_the_refunds_of_each_charge() -> None:
    asked: list[tuple[str, str]] = []

    async def fetch(need: Need, parent_id: str) -> RelatedPage:
        asked.append((need.resource, parent_id))
        return RELATED[(need, parent_id)]

    intents: JsonObject = {
        "object": "list",
        "data": [
            to_json(resources.payment_intent()),
            to_json(resources.payment_intent(id="pi_3New", latest_charge=None)),
        ],
        "has_more": False,
        "url": "/v1/payment_intents",
    }
    related = await gather_related(intents, BEFORE, one_by_one(fetch))
    assert asked == [("charge", "pi_3Example"), ("refund", "ch_3Example")]
    assert set(related) == {
        (CHARGES_OF_PAYMENT_INTENT, "pi_3Example"),
        (REFUNDS_OF_CHARGE, "ch_3Example"),
    }
    rendered = render(intents, BEFORE, related)
    data = rendered["data"]
    assert isinstance(data, list)
    assert isinstance(data[0], dict)
    assert (
        data[0]["charges"]
        == render(to_json(resources.payment_intent()), BEFORE, RELATED)["charges"]
    )


@pytest.mark.anyio
async def test_gathering_asks_once_per_need_and_level_for_a_whole_page() -> None:
    """A page of intents asks for the charges of all of them in one call, then for the refunds
    of all those charges in one more: two calls however long the page."""
    intents = [to_json(resources.payment_intent(id=f"pi_{n}")) for n in range(30)]
    for n, intent in enumerate(intents):
        intent["latest_charge"] = f"ch_{n}"
    calls: list[tuple[str, list[str]]] = []

    async def fetch(need: Need, keys: Sequence[str]) -> Mapping[str, RelatedPage]:
        calls.append((need.resource, list(keys)))
        if need is CHARGES_OF_PAYMENT_INTENT:
            return {
                key: RelatedPage.whole([to_json(resources.charge(id=key.replace("pi_", "ch_")))])
                for key in keys
            }
        return {key: RelatedPage.whole([]) for key in keys}

    page: JsonObject = {"object": "list", "data": list(intents), "has_more": False, "url": "/x"}
    related = await gather_related(page, BEFORE, fetch)
    assert calls == [
        ("charge", [f"pi_{n}" for n in range(30)]),
        ("refund", [f"ch_{n}" for n in range(30)]),
    ]
    rendered = render(page, BEFORE, related)["data"]
    assert isinstance(rendered, list)
    assert isinstance(rendered[7], dict)
    charges = rendered[7]["charges"]
    assert isinstance(charges, dict)
    assert isinstance(charges["data"], list)
    assert [charge["id"] for charge in charges["data"] if isinstance(charge, dict)] == ["ch_7"]


@pytest.mark.anyio
async def test_nothing_is_fetched_from_2022_11_15_on() -> None:
    async def fetch(need: Need, parent_id: str) -> RelatedPage:
        raise AssertionError("no fetch expected")

    assert await gather_related(to_json(resources.payment_intent()), AT, one_by_one(fetch)) == {}
    assert pb.PaymentIntent.DESCRIPTOR.fields_by_name.get("charges") is None


def test_an_embedded_list_longer_than_its_page_says_so_and_counts_everything() -> None:
    refunds = [to_json(resources.refund(id=f"re_{n}")) for n in range(3)]
    page = RelatedPage(refunds, has_more=True, total_count=130)
    charge = to_json(resources.charge())
    charge.pop("refunds")
    rendered = render(charge, BEFORE, {(REFUNDS_OF_CHARGE, "ch_3Example"): page})["refunds"]
    assert isinstance(rendered, dict)
    assert (rendered["has_more"], rendered["total_count"]) == (True, 130)
    assert rendered["data"] == refunds
