"""`/v1/webhook_endpoints`: Stripe's WebhookEndpoint endpoints."""

from remit.core.jsonview import JsonObject, to_json
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.grpc_call import call
from remit.rest.listing import list_envelope
from remit.rest.params import (
    UNSET,
    Boolean,
    Metadata,
    PageRequest,
    Schema,
    String,
    StringList,
    list_schema,
)
from remit.webhooks.event_types import MAX_ENABLED_EVENTS
from remit_api.webhooks.v1 import webhooks_pb2 as pb

PATH = "/v1/webhook_endpoints"
MAX_URL_LENGTH = 2048
# Bounded as the core bounds it (`event_types.MAX_ENABLED_EVENTS`), each type counted once.
_ENABLED_EVENTS = StringList(max_items=MAX_ENABLED_EVENTS, max_length=100, distinct=True)

CREATE = Schema(
    {
        "url": String(max_length=MAX_URL_LENGTH),
        "enabled_events": _ENABLED_EVENTS,
        "api_version": String(max_length=100),
        "description": String(max_length=5000),
        "metadata": Metadata(),
    },
    required={"url", "enabled_events"},
)
UPDATE = Schema(
    {
        "url": String(max_length=MAX_URL_LENGTH),
        "enabled_events": _ENABLED_EVENTS,
        "disabled": Boolean(),
        "description": String(max_length=5000, unsettable=True),
        "metadata": Metadata(),
    }
)
RETRIEVE = Schema({})
DELETE = Schema({})
LIST = list_schema(created=False)


async def create(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.CreateWebhookEndpointRequest(
        url=context.str_param("url"),
        enabled_events=context.str_list("enabled_events"),
        metadata=context.new_metadata(),
    )
    for name in ("api_version", "description"):
        value = context.optional_str(name)
        if value is not None:
            setattr(request, name, value)
    reply = await call(deps.webhooks.CreateWebhookEndpoint, request, context)
    return to_json(reply.webhook_endpoint)


async def retrieve(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.GetWebhookEndpointRequest(id=context.path["endpoint"])
    reply = await call(deps.webhooks.GetWebhookEndpoint, request, context)
    return to_json(reply.webhook_endpoint)


async def update(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.UpdateWebhookEndpointRequest(
        id=context.path["endpoint"], enabled_events=context.str_list("enabled_events")
    )
    url = context.optional_str("url")
    if url is not None:
        request.url = url
    disabled = context.optional_bool("disabled")
    if disabled is not None:
        request.disabled = disabled
    description = context.params.get("description")
    if description is UNSET:
        request.description = ""
    elif isinstance(description, str):
        request.description = description
    metadata = context.params.get("metadata")
    if metadata is UNSET:
        request.clear_metadata = True
    elif isinstance(metadata, dict):
        # Stripe's `metadata[key]=` (an empty value) removes that key.
        for key, value in metadata.items():
            if value == "":
                request.unset_metadata_keys.append(str(key))
            else:
                request.metadata[str(key)] = str(value)
    reply = await call(deps.webhooks.UpdateWebhookEndpoint, request, context)
    return to_json(reply.webhook_endpoint)


async def delete(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.DeleteWebhookEndpointRequest(id=context.path["endpoint"])
    reply = await call(deps.webhooks.DeleteWebhookEndpoint, request, context)
    return to_json(reply.deleted_webhook_endpoint)


async def list_endpoints(context: ApiContext, deps: Dependencies) -> JsonObject:
    page = PageRequest.from_params(context.params)
    request = pb.ListWebhookEndpointsRequest(limit=page.limit)
    if page.starting_after is not None:
        request.starting_after = page.starting_after
    if page.ending_before is not None:
        request.ending_before = page.ending_before
    reply = await call(deps.webhooks.ListWebhookEndpoints, request, context)
    return list_envelope(reply.data, has_more=reply.has_more, url=PATH)
