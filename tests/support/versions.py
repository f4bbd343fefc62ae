"""Helpers for tests that pin old API behaviour: render at the version before a change and at
the change, and compare exactly."""

from typing import cast

from remit.core.jsonview import JsonObject, JsonValue
from remit.rest.errors import StripeError
from versions import KNOWN_VERSIONS

ABSENT = "<absent>"


def version_before(version: str) -> str:
    """The version just older than `version`."""
    return KNOWN_VERSIONS[KNOWN_VERSIONS.index(version) + 1]


def top_level_difference(
    before: JsonObject, at: JsonObject
) -> dict[str, tuple[JsonValue, JsonValue]]:
    """Every top-level key whose value differs: key -> (value before, value at); a key present
    on one side only shows `ABSENT` on the other."""
    keys = list(dict.fromkeys([*before, *at]))
    return {
        key: (before.get(key, ABSENT), at.get(key, ABSENT))
        for key in keys
        if before.get(key, ABSENT) != at.get(key, ABSENT)
    }


def error_body(error: StripeError) -> JsonObject:
    """A StripeError's `{"error": {...}}` body as JSON."""
    return cast(JsonObject, error.to_body())
