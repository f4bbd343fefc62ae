"""`/v1/events`: Stripe's Event endpoints (the last 30 days).

The core returns each event rendered at the version the account was pinned to when the event
happened, as its webhooks were, and `api_version` says which: not at `Stripe-Version` (Stripe
renders an event's data once and never again). The routes set `rendered_by_core`, so the facade
does not render them a second time, nor expand them: see `_EXPANDABLE`. Each event is shown as
the JSON the core rendered (the Event message cannot hold every version's shape: `request` was a
string before 2017-05-25), which is all the facade asks for (`json_only`): an event rendered at
an old version may take megabytes, and would otherwise travel twice.
"""

import json
from typing import Final, cast

from remit.core.jsonview import JsonObject, JsonValue, to_json
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.expand import refuse_all_but
from remit.rest.grpc_call import call
from remit.rest.listing import page_fields
from remit.rest.params import (
    Boolean,
    PageRequest,
    Schema,
    String,
    StringList,
    list_schema,
)
from remit_api.webhooks.v1 import webhooks_pb2 as pb

PATH = "/v1/events"
MAX_TYPES = 20

LIST = list_schema(
    {
        "type": String(max_length=100),
        "types": StringList(max_items=MAX_TYPES, max_length=100),
        "delivery_success": Boolean(),
    }
).extend({}, exclusive=[("type", "types")])
RETRIEVE = Schema({})

# Stripe's Event has two expandable fields, `data` and `request`, and both are always objects:
# expanding them changes nothing. `data.object` is the resource as it was when the event
# happened, and nothing inside it can be expanded (Stripe's spec lists no expandable field for
# NotificationEventData): a path into it is refused, not ignored, since a merchant who asked
# for `data.object.latest_charge` and got an id back would be misled.
_EXPANDABLE: Final = frozenset({"data", "request"})
_EXPANDABLE_IN_A_LIST: Final = frozenset({"data", *(f"data.{field}" for field in _EXPANDABLE)})


async def retrieve(context: ApiContext, deps: Dependencies) -> JsonObject:
    refuse_all_but(context.expand, _EXPANDABLE)
    asked = pb.GetEventRequest(id=context.path["event"], json_only=True)
    reply = await call(deps.webhooks.GetEvent, asked, context)
    return _as_rendered(reply.event, reply.event_json)


async def list_events(context: ApiContext, deps: Dependencies) -> JsonObject:
    refuse_all_but(context.expand, _EXPANDABLE_IN_A_LIST)
    page = PageRequest.from_params(context.params)
    request = pb.ListEventsRequest(**page_fields(page), json_only=True)  # type: ignore[arg-type]
    event_type = context.optional_str("type")
    if event_type is not None:
        request.type = event_type
    request.types.extend(context.str_list("types"))
    delivery_success = context.optional_bool("delivery_success")
    if delivery_success is not None:
        request.delivery_success = delivery_success
    reply = await call(deps.webhooks.ListEvents, request, context)
    # The JSON alone, as asked; a core from before the rendered JSON travelled sends only
    # the messages (and one from before `json_only`, both).
    data: list[JsonValue] = (
        [_shown(rendered) for rendered in reply.data_json]
        if reply.data_json
        else [to_json(event) for event in reply.data]
    )
    return {"object": "list", "data": data, "has_more": reply.has_more, "url": PATH}


def _as_rendered(event: pb.Event, rendered: bytes) -> JsonObject:
    """The event as the core rendered it; from a core that sends only the message, the
    message (right at every version since 2017-05-25)."""
    return _shown(rendered) if rendered else to_json(event)


def _shown(rendered: bytes) -> JsonObject:
    shown = json.loads(rendered)
    assert isinstance(shown, dict)
    return cast(JsonObject, shown)
