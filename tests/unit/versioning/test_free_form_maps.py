"""A merchant's metadata is theirs, whatever it holds: the walks over latest-schema JSON (the
renderer, the removal of fields kept off the wire, the gathering of related lists) never enter
a free-form map, even one that looks like a Stripe object."""

import asyncio

import pytest

from remit.core.jsonview import JsonObject, to_json
from remit.versioning import Need, RelatedPage, gather_related, one_by_one, render, render_event
from remit.versioning.descriptors import free_form_fields
from remit_api.payments.v1 import payments_pb2 as pb
from tests.support import resources
from versions import LATEST_VERSION

LOOKS_LIKE_A_CHARGE: dict[str, str] = {
    "object": "charge",
    "id": "order-42",
    "status": "succeeded",
    "authorization_released": "no",
}
"""Metadata whose keys name a charge's: `authorization_released` is kept off the wire on a
real charge, `status` renamed before 2015-02-18, and its refunds fetched before 2022-11-15."""

VERSIONS = [LATEST_VERSION, "2025-02-24.acacia", "2022-08-01", "2017-04-06", "2014-06-13"]


def _intent() -> JsonObject:
    intent = resources.payment_intent(
        status=pb.PAYMENT_INTENT_STATUS_REQUIRES_PAYMENT_METHOD, latest_charge=None
    )
    intent.metadata.clear()
    intent.metadata.update(LOOKS_LIKE_A_CHARGE)
    return to_json(intent)


def _gathered(
    body: JsonObject, version: str
) -> tuple[dict[tuple[Need, str], RelatedPage], list[str]]:
    asked: list[str] = []

    async def fetch(need: Need, parent_id: str) -> RelatedPage:
        asked.append(f"{need.resource} of {parent_id}")
        return RelatedPage.whole([])

    related = asyncio.run(gather_related(body, version, one_by_one(fetch)))
    return dict(related), asked


def test_metadata_is_the_only_free_form_field() -> None:
    assert free_form_fields() == frozenset({"metadata"})


@pytest.mark.parametrize("version", VERSIONS)
def test_metadata_that_looks_like_a_charge_comes_back_as_it_was_sent(version: str) -> None:
    intent = _intent()
    related, asked = _gathered(intent, version)
    assert asked == []
    assert render(intent, version, related)["metadata"] == LOOKS_LIKE_A_CHARGE


@pytest.mark.parametrize("version", VERSIONS)
def test_metadata_in_an_event_and_its_previous_attributes_comes_back_as_it_was_sent(
    version: str,
) -> None:
    """Its changed keys, even an `id` beside an `object`, are the merchant's: the map is
    reported key by key (whole before 2015-01-26) like any other, not as another object."""
    changed: JsonObject = {"id": "order-41", "status": "failed"}
    event = to_json(
        resources.event(
            _intent(),
            previous_attributes={"metadata": changed},
            event_type="payment_intent.updated",
        )
    )
    related, asked = _gathered(event, version)
    assert asked == []
    data = render_event(event, version, related)["data"]
    assert isinstance(data, dict)
    assert data["object"]["metadata"] == LOOKS_LIKE_A_CHARGE  # type: ignore[call-overload,index]
    if version == "2014-06-13":
        assert data["previous_attributes"] == {"metadata": {**LOOKS_LIKE_A_CHARGE, **changed}}
    else:
        assert data["previous_attributes"] == {"metadata": changed}
