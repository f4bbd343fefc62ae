"""A payment error's payment method shown as the object, wherever the error is in a body."""

from collections.abc import Collection, Mapping

import pytest

from remit.core.jsonview import JsonObject
from remit.core.payment_errors import expand_payment_methods

pytestmark = pytest.mark.anyio

KNOWN = {"pm_visa", "pm_amex"}


class Methods:
    """Payment methods by id, each ask recorded."""

    def __init__(self) -> None:
        self.asked: list[set[str]] = []

    async def fetch(self, method_ids: Collection[str]) -> Mapping[str, JsonObject]:
        self.asked.append(set(method_ids))
        return {
            method_id: {"object": "payment_method", "id": method_id, "card": {"last4": "0002"}}
            for method_id in method_ids
            if method_id in KNOWN
        }


def declined_intent(intent_id: str, method_id: str) -> JsonObject:
    return {
        "object": "payment_intent",
        "id": intent_id,
        "payment_method": None,
        "last_payment_error": {"type": "card_error", "payment_method": method_id},
    }


def failed_method(intent: object) -> object:
    assert isinstance(intent, dict)
    error = intent["last_payment_error"]
    assert isinstance(error, dict)
    return error["payment_method"]


async def test_a_list_asks_once_for_each_distinct_payment_method() -> None:
    methods = Methods()
    body: JsonObject = {
        "object": "list",
        "data": [
            declined_intent("pi_1", "pm_visa"),
            declined_intent("pi_2", "pm_amex"),
            declined_intent("pi_3", "pm_visa"),
            {"object": "payment_intent", "id": "pi_4", "last_payment_error": None},
        ],
    }
    await expand_payment_methods(body, methods.fetch)
    assert methods.asked == [{"pm_visa", "pm_amex"}]
    data = body["data"]
    assert isinstance(data, list)
    shown = [failed_method(intent) for intent in data[:3]]
    assert [method["id"] for method in shown] == ["pm_visa", "pm_amex", "pm_visa"]  # type: ignore[index]
    assert shown[0] == shown[2]
    assert shown[0] is not shown[2]  # each place its own copy


async def test_an_error_body_shows_the_object_in_itself_and_in_its_intent() -> None:
    body: JsonObject = {
        "error": {
            "type": "card_error",
            "payment_method": "pm_visa",
            "payment_intent": declined_intent("pi_1", "pm_visa"),
        }
    }
    await expand_payment_methods(body, Methods().fetch)
    error = body["error"]
    assert isinstance(error, dict)
    assert error["payment_method"] == failed_method(error["payment_intent"])
    assert error["payment_method"] == {
        "object": "payment_method",
        "id": "pm_visa",
        "card": {"last4": "0002"},
    }


async def test_an_intent_expanded_into_another_object_shows_it_too() -> None:
    body: JsonObject = {
        "object": "charge",
        "id": "ch_1",
        "payment_intent": declined_intent("pi_1", "pm_amex"),
    }
    await expand_payment_methods(body, Methods().fetch)
    assert failed_method(body["payment_intent"]) == {
        "object": "payment_method",
        "id": "pm_amex",
        "card": {"last4": "0002"},
    }


async def test_an_event_shows_it_in_its_object_and_its_previous_attributes() -> None:
    methods = Methods()
    body: JsonObject = {
        "object": "event",
        "data": {
            "object": declined_intent("pi_1", "pm_amex"),
            "previous_attributes": {"last_payment_error": {"payment_method": "pm_visa"}},
        },
    }
    await expand_payment_methods(body, methods.fetch)
    data = body["data"]
    assert isinstance(data, dict)
    assert failed_method(data["object"])["id"] == "pm_amex"  # type: ignore[index]
    assert failed_method(data["previous_attributes"])["id"] == "pm_visa"  # type: ignore[index]
    assert methods.asked == [{"pm_visa", "pm_amex"}]


async def test_a_payment_method_not_found_stays_an_id() -> None:
    body = declined_intent("pi_1", "pm_gone")
    await expand_payment_methods(body, Methods().fetch)
    assert failed_method(body) == "pm_gone"


async def test_a_body_without_a_payment_error_asks_for_nothing() -> None:
    methods = Methods()
    body: JsonObject = {
        "object": "payment_intent",
        "id": "pi_1",
        "payment_method": "pm_visa",
        "last_payment_error": None,
    }
    await expand_payment_methods(body, methods.fetch)
    assert methods.asked == []
    assert body["payment_method"] == "pm_visa"  # only `expand[]` expands the intent's own
