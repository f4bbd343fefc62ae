"""The payment method of a payment error, which Stripe always shows as the PaymentMethod object
rather than its id, whatever `expand[]` asks: in each PaymentIntent's `last_payment_error`, and
in the error object of a request a card declined.

Only the finding and the replacing live here, with no I/O: the caller fetches the payment
methods (the REST facade over gRPC, the core from its database), all the ids of one body at
once, so that a list of declined intents asks for each payment method a single time.
"""

import copy
from collections.abc import Awaitable, Callable, Collection, Mapping

from remit.core.jsonview import JsonObject, JsonValue

FetchPaymentMethods = Callable[[Collection[str]], Awaitable[Mapping[str, JsonObject]]]
"""The payment methods of these ids that exist, as latest-schema JSON by id."""


async def expand_payment_methods(body: JsonObject, fetch: FetchPaymentMethods) -> None:
    """Replace, in place, the `payment_method` id of every payment error in `body` with the
    object `fetch` finds for it; an id it does not find is left as it is."""
    errors = [(error, _payment_method_id(error)) for error in unexpanded_payment_errors(body)]
    if not errors:
        return
    found = await fetch({method_id for _, method_id in errors})
    for error, method_id in errors:
        method = found.get(method_id)
        if method is not None:
            # A copy at each place: version changes may edit an object where they meet it.
            error["payment_method"] = copy.deepcopy(method)


def unexpanded_payment_errors(body: JsonObject) -> list[JsonObject]:
    """The payment errors in `body` whose `payment_method` is still an id: an error response's
    own error object, and the `last_payment_error` of each payment intent at any depth (list
    items, expanded fields, event data, the intent an error carries)."""
    found: list[JsonObject] = []
    own_error = body.get("error")
    if isinstance(own_error, dict):
        _note_if_unexpanded(own_error, found)
    _collect(body, found)
    return found


def _collect(value: JsonValue, found: list[JsonObject]) -> None:
    if isinstance(value, list):
        for item in value:
            _collect(item, found)
        return
    if not isinstance(value, dict):
        return
    kind = value.get("object")
    if kind == "payment_intent":
        _note_last_payment_error(value, found)
    elif kind == "event":
        _note_previous_last_payment_error(value, found)
    for item in value.values():
        if isinstance(item, dict | list):
            _collect(item, found)


def _note_previous_last_payment_error(event: JsonObject, found: list[JsonObject]) -> None:
    """An event's `previous_attributes` is part of an object without its `object` key: the
    error an intent had before the change shows its payment method like the current one."""
    data = event.get("data")
    if not isinstance(data, dict):
        return
    changed, previous = data.get("object"), data.get("previous_attributes")
    of_an_intent = isinstance(changed, dict) and changed.get("object") == "payment_intent"
    if of_an_intent and isinstance(previous, dict):
        _note_last_payment_error(previous, found)


def _note_last_payment_error(intent: JsonObject, found: list[JsonObject]) -> None:
    error = intent.get("last_payment_error")
    if isinstance(error, dict):
        _note_if_unexpanded(error, found)


def _note_if_unexpanded(error: JsonObject, found: list[JsonObject]) -> None:
    if isinstance(error.get("payment_method"), str):
        found.append(error)


def _payment_method_id(error: JsonObject) -> str:
    method_id = error["payment_method"]
    assert isinstance(method_id, str)
    return method_id
