"""At a version no change of which reads the fields kept off the wire, the facade has
`to_json` leave them out, and rendering returns such a body as it is, without walking it;
everywhere else they are rendered for the changes and taken out after."""

from remit.core.jsonview import JsonObject, internal_fields_left_out, to_json
from remit.versioning import load, reads_internal_fields, render
from tests.support import resources
from versions import KNOWN_VERSIONS, LATEST_VERSION

BASIL = "2025-03-31.basil"


def _intent_with_charge() -> JsonObject:
    intent = to_json(resources.payment_intent())
    intent["latest_charge"] = to_json(resources.charge())
    return intent


def test_only_versions_before_basil_read_a_field_kept_off_the_wire() -> None:
    load()
    basil = KNOWN_VERSIONS.index(BASIL)
    assert [reads_internal_fields(v) for v in KNOWN_VERSIONS] == [
        index > basil for index in range(len(KNOWN_VERSIONS))
    ]


def test_to_json_leaves_internal_fields_out_only_inside_the_block() -> None:
    charge = resources.charge()
    with internal_fields_left_out():
        left_out = to_json(charge)
        with internal_fields_left_out(False):
            kept = to_json(charge)
    assert "authorization_released" not in left_out
    assert kept["authorization_released"] is False
    assert to_json(charge)["authorization_released"] is False
    assert left_out == {k: v for k, v in kept.items() if k != "authorization_released"}


def test_a_body_made_without_internal_fields_renders_at_the_latest_version_unwalked() -> None:
    load()
    with internal_fields_left_out():
        intent = _intent_with_charge()
    assert render(intent, LATEST_VERSION, holds_internal_fields=False) is intent


def test_a_body_that_may_hold_internal_fields_still_loses_them() -> None:
    load()
    intent = _intent_with_charge()
    rendered = render(intent, LATEST_VERSION)
    charge = rendered["latest_charge"]
    assert isinstance(charge, dict)
    assert "authorization_released" not in charge
    assert "authorization_released" in intent["latest_charge"]  # type: ignore[operator]
