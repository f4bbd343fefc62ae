import json
from typing import Any, cast

import pytest
from openapi_spec_validator import validate

from remit.core.jsonview import JsonObject
from remit.rest.app import Operation
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.params import Integer, Schema, StringList
from remit.versioning.changelog import changelog_markdown
from remit.versioning.openapi import build_document, document, openapi_json
from remit.versioning.registry import all_changes
from versions import KNOWN_VERSIONS, LATEST_VERSION


async def _unused(context: ApiContext, deps: Dependencies) -> JsonObject:
    raise AssertionError("never called")


@pytest.mark.parametrize(
    "version", [LATEST_VERSION, "2025-03-01.dashboard", "2019-02-11", "2018-11-08", "2011-01-01"]
)
def test_the_openapi_document_of_a_version_is_a_valid_openapi_3_1_document(version: str) -> None:
    validated = json.loads(openapi_json(version))
    validate(validated)
    assert validated["info"]["version"] == version
    assert "/v1/payment_intents" in validated["paths"]


def test_schemas_follow_the_changes_of_each_version() -> None:
    def props(version: str, name: str) -> dict[str, object]:
        doc: Any = document(version)
        return cast(dict[str, object], doc["components"]["schemas"][name]["properties"])

    latest, old = props(LATEST_VERSION, "payment_intent"), props("2011-01-01", "payment_intent")
    assert {"charges", "allowed_source_types", "next_source_action", "invoice"} <= old.keys()
    assert not {"charges", "allowed_source_types", "next_source_action", "invoice"} & latest.keys()
    assert "requires_source" in json.dumps(old["status"])
    assert "paid" in json.dumps(props("2015-02-16", "charge")["status"])
    assert props("2017-04-06", "event")["request"] == {
        "anyOf": [{"type": "string"}, {"type": "null"}]
    }


def test_a_list_that_renders_null_when_unset_is_a_nullable_array() -> None:
    doc: Any = document(LATEST_VERSION)
    settings = doc["components"]["schemas"]["CustomerInvoiceSettings"]["properties"]
    assert settings["custom_fields"] == {"anyOf": [{"type": "array"}, {"type": "null"}]}


def test_request_parameters_follow_the_changes_of_each_version() -> None:
    operation = Operation(
        "POST",
        "/v1/payment_intents",
        Schema(
            {"amount": Integer(min=1), "payment_method_types": StringList()}, required={"amount"}
        ),
        _unused,
    )

    def params(version: str) -> set[str]:
        doc: Any = build_document(version, [operation])
        post = doc["paths"]["/v1/payment_intents"]["post"]
        schema = post["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
        return set(schema["properties"])

    # `expand`, which every GET and POST operation takes, whatever its schema declares.
    assert params(LATEST_VERSION) == {"amount", "expand"}
    assert params("2026-08-26.dahlia") == {"amount", "expand", "payment_method_types"}
    assert params("2018-11-08") == {"amount", "expand", "allowed_source_types"}


def test_a_currency_filter_is_described_as_any_three_letter_code() -> None:
    """The balance transactions list filters by any currency code, not only remit's own."""
    doc: Any = document(LATEST_VERSION)
    listed = doc["paths"]["/v1/balance_transactions"]["get"]["parameters"]
    currency = next(param for param in listed if param["name"] == "currency")
    assert currency["schema"] == {"type": "string", "pattern": "^[A-Za-z]{3}$"}


def test_every_text_parameter_is_described_with_its_limit() -> None:
    """Text in the body, in the path, and metadata's keys and values alike."""
    doc: Any = document(LATEST_VERSION)
    create = doc["paths"]["/v1/payment_intents"]["post"]["requestBody"]["content"]
    body = create["application/x-www-form-urlencoded"]["schema"]["properties"]
    assert body["description"] == {"type": "string", "maxLength": 1000}
    assert body["shipping"]["properties"]["address"]["properties"]["line1"]["maxLength"] == 5000
    # `metadata=` clears it all.
    assert body["metadata"]["anyOf"][0] == {
        "type": "object",
        "maxProperties": 50,
        "propertyNames": {"minLength": 1, "maxLength": 40},
        "additionalProperties": {"type": "string", "maxLength": 500},
    }
    retrieve = doc["paths"]["/v1/payment_intents/{intent}"]["get"]["parameters"]
    intent = next(param for param in retrieve if param["in"] == "path")
    assert intent["schema"] == {"type": "string", "maxLength": 5000}


def test_an_unknown_version_has_no_document() -> None:
    with pytest.raises(KeyError):
        document("2019-13-01")


def test_the_changelog_lists_every_change_under_its_version_newest_first() -> None:
    text = changelog_markdown()
    for change in all_changes():
        assert f"**{change.__name__}**" in text
        assert text.index(f"## {change.version}") < text.index(f"**{change.__name__}**")
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert headings == sorted(headings, key=KNOWN_VERSIONS.index)
    assert headings[0] == "2026-09-30.endive"


def test_off_session_is_a_boolean_or_how_the_customer_is_away() -> None:
    """Stripe's spec: anyOf[boolean, enum[one_off, recurring]], on create and confirm."""
    doc: Any = document(LATEST_VERSION)
    for path in ("/v1/payment_intents", "/v1/payment_intents/{intent}/confirm"):
        body = doc["paths"][path]["post"]["requestBody"]["content"]
        properties = body["application/x-www-form-urlencoded"]["schema"]["properties"]
        assert properties["off_session"] == {
            "anyOf": [{"type": "boolean"}, {"type": "string", "enum": ["one_off", "recurring"]}]
        }
        assert properties["use_stripe_sdk"] == {"type": "boolean"}
