"""Properties of the engine over every version: any resource renders at every version, the latest
version is the identity, and each version's rendering matches that version's OpenAPI schemas."""

import asyncio
from functools import cache

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remit.core.jsonview import JsonObject, JsonValue, to_json
from remit.versioning import Need, RelatedPage, gather_related, one_by_one, render, render_event
from remit.versioning.openapi import document
from remit_api.payments.v1 import payments_pb2 as pb
from tests.support import resources
from versions import KNOWN_VERSIONS, LATEST_VERSION

INTENT_STATUSES = [v.number for v in pb.PaymentIntentStatus.DESCRIPTOR.values if v.number]
CHARGE_STATUSES = [v.number for v in pb.ChargeStatus.DESCRIPTOR.values if v.number]


def _gather(body: JsonObject, version: str, charges: list[JsonObject]) -> object:
    async def fetch(need: Need, parent_id: str) -> RelatedPage:
        if need.resource == "charge":
            return RelatedPage.whole(charges)
        if need.resource == "rule":
            return RelatedPage.whole([to_json(resources.rule(id=parent_id))])
        return RelatedPage.whole([to_json(resources.refund())])

    return asyncio.run(gather_related(body, version, one_by_one(fetch)))


@st.composite
def payment_intents(draw: st.DrawFn) -> tuple[JsonObject, list[JsonObject]]:
    has_charge = draw(st.booleans())
    intent = to_json(
        resources.payment_intent(
            status=draw(st.sampled_from(INTENT_STATUSES)),
            latest_charge="ch_3Example" if has_charge else None,
            with_next_action=draw(st.booleans()),
        )
    )
    charges = [
        to_json(
            resources.charge(
                status=draw(st.sampled_from(CHARGE_STATUSES)),
                rule=draw(st.sampled_from([None, "rule_1Example"])),
            )
        )
        for _ in range(draw(st.integers(1, 3)) if has_charge else 0)
    ]
    if has_charge and draw(st.booleans()):
        intent["latest_charge"] = charges[0]
    return intent, charges


@settings(max_examples=40, deadline=None)
@given(payment_intents(), st.sampled_from(KNOWN_VERSIONS))
def test_any_payment_intent_renders_at_any_version(
    example: tuple[JsonObject, list[JsonObject]], version: str
) -> None:
    intent, charges = example
    related = _gather(intent, version, charges)
    rendered = render(intent, version, related)  # type: ignore[arg-type]
    assert rendered["id"] == intent["id"]
    assert rendered["amount"] == intent["amount"]
    assert ("charges" in rendered) is (
        KNOWN_VERSIONS.index(version) > KNOWN_VERSIONS.index("2022-11-15")
    )


@settings(max_examples=40, deadline=None)
@given(payment_intents(), st.sampled_from(INTENT_STATUSES))
def test_rendering_at_the_latest_version_is_the_identity(
    example: tuple[JsonObject, list[JsonObject]], status: int
) -> None:
    intent, _ = example
    rendered = render(intent, LATEST_VERSION)
    if isinstance(intent["latest_charge"], dict):
        assert rendered == _shown(intent)  # the expanded charge without its internal field
    else:
        assert rendered is intent
    event = to_json(resources.event(intent, previous_attributes={"status": "processing"}))
    assert render(event, LATEST_VERSION) == _shown(event)
    assert render_event(event, LATEST_VERSION) == {**_shown(event), "api_version": LATEST_VERSION}


def _shown(body: JsonObject) -> JsonObject:
    """`body` less the fields kept off the wire (a charge's `authorization_released`)."""

    def strip(value: JsonValue) -> JsonValue:
        if isinstance(value, list):
            return [strip(item) for item in value]
        if not isinstance(value, dict):
            return value
        hidden = {"authorization_released"} if value.get("object") == "charge" else set()
        return {key: strip(item) for key, item in value.items() if key not in hidden}

    shown = strip(body)
    assert isinstance(shown, dict)
    return shown


@cache
def _validator(version: str, component: str) -> jsonschema.Draft202012Validator:
    root = dict(document(version))
    root["$ref"] = f"#/components/schemas/{component}"
    return jsonschema.Draft202012Validator(root)


@pytest.mark.parametrize("name", sorted(resources.examples()))
def test_every_example_renders_at_every_version_and_matches_that_versions_openapi(
    name: str,
) -> None:
    example = resources.examples()[name]
    related = resources.related_lists()
    for version in KNOWN_VERSIONS:
        rendered = render(example, version, related)
        kind = rendered["object"]
        assert isinstance(kind, str)
        if kind == "list":
            data = rendered["data"]
            assert isinstance(data, list)
            targets = [(item, "payment_intent") for item in data]
        else:
            targets = [(rendered, kind)]
        for target, component in targets:
            errors = sorted(_validator(version, component).iter_errors(target), key=str)
            assert not errors, f"{name} at {version}: {errors[0].message} at {list(errors[0].path)}"
