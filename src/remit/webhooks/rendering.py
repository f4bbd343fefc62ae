"""An event as Stripe JSON, and the renderer that turns it into an older API version's shape.

Events are stored at the latest schema. Whoever shows one (a delivery, `remit listen`) renders it
at one version through a `Renderer`, and `api_version` says which version that was.
"""

from collections.abc import Awaitable, Callable
from typing import TypeAlias

from remit.core.clock import unix_seconds
from remit.core.jsonview import JsonObject, JsonValue
from remit.versioning.internal import without_internal_fields
from remit.webhooks.domain import Event
from versions import LATEST_VERSION

# await render(event, event_json, api_version) -> event_json at that version. It receives the
# whole event object (`object: "event"`), so version changes may touch the envelope as well as
# `data.object` and `data.previous_attributes`; and the stored event, whose account and time
# say where to look up what old versions embed (a PaymentIntent's charges, say).
Renderer: TypeAlias = Callable[[Event, JsonObject, str], Awaitable[JsonObject]]


def event_json(event: Event, *, api_version: str) -> JsonObject:
    """The event at the latest schema, with the same keys `jsonview.to_json` gives `pb.Event`.
    `data.previous_attributes` is there only when the event has them (a `*.updated` event): it
    is optional in Stripe's schema, never null, at every version."""
    data: dict[str, JsonValue] = {"object": event.data_object}
    if event.previous_attributes is not None:
        data["previous_attributes"] = event.previous_attributes
    return {
        "object": "event",
        "id": event.id,
        "api_version": api_version,
        "created": unix_seconds(event.created_at),
        "data": data,
        "livemode": event.livemode,
        "pending_webhooks": event.pending_webhooks,
        "request": {"id": event.request_id, "idempotency_key": event.idempotency_key},
        "type": event.type,
    }


async def render_event(
    event: Event, renderer: Renderer | None, wanted_version: str | None
) -> JsonObject:
    """The event rendered at `wanted_version` (None: the latest).

    Without a renderer only the latest schema can be produced honestly, so the event says so.
    The renderer is asked at the latest version too: besides version changes, it shows what
    Stripe always expands (a payment error's payment method), which the stored event names by
    id.
    """
    if renderer is None:
        # The stored object holds the fields kept off the wire (a charge's
        # `authorization_released`): the renderer would drop them, so here they go too.
        return without_internal_fields(event_json(event, api_version=LATEST_VERSION))
    version = wanted_version or LATEST_VERSION
    return await renderer(event, event_json(event, api_version=version), version)
