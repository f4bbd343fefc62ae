"""WebhooksService over gRPC: protobuf in, use case, protobuf out. Nothing else."""

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import struct_pb2

from remit.core.errors import invalid
from remit.core.jsonview import JsonObject
from remit.core.metadata import requested_metadata
from remit.grpcutil.metadata import call_context
from remit.grpcutil.protoconv import (
    filter_bound,
    request_datetime,
    request_timedelta,
    timestamp,
)
from remit.grpcutil.server import ServiceRegistration
from remit.payments.keyed_rpc import client_keyed, reply, serialized
from remit.storage.answer_budget import PAGE_ANSWER_BYTES
from remit.webhooks.delivery import encode_payload
from remit.webhooks.domain import DeliveryAttempt, EndpointStatus, Event, WebhookEndpoint
from remit.webhooks.event_types import UnknownEventTypeError, validate_type_filter
from remit.webhooks.rendering import render_event
from remit.webhooks.repository import EventFilter, TimeRange
from remit.webhooks.service import EndpointChanges, PageArgs, WebhooksService
from remit.webhooks.signing import generate_secret
from remit.webhooks.stream import EventNotifier, LiveEvents
from remit_api.common.v1 import common_pb2
from remit_api.webhooks.v1 import webhooks_pb2 as pb
from remit_api.webhooks.v1 import webhooks_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]

_STATUS = {
    EndpointStatus.ENABLED: pb.WEBHOOK_ENDPOINT_STATUS_ENABLED,
    EndpointStatus.DISABLED: pb.WEBHOOK_ENDPOINT_STATUS_DISABLED,
}


def endpoint_message(endpoint: WebhookEndpoint, *, with_secret: bool = False) -> pb.WebhookEndpoint:
    message = pb.WebhookEndpoint(
        id=endpoint.id,
        created=timestamp(endpoint.created_at),
        enabled_events=list(endpoint.enabled_events),
        livemode=False,
        metadata=dict(endpoint.metadata),
        status=_STATUS[endpoint.status],
        url=endpoint.url,
    )
    if endpoint.api_version is not None:
        message.api_version = endpoint.api_version
    if endpoint.description is not None:
        message.description = endpoint.description
    if endpoint.disabled_reason is not None:
        message.disabled_reason = endpoint.disabled_reason.value
    if with_secret:
        message.secret = endpoint.secret
    return message


def _struct(value: object) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    assert isinstance(value, dict)
    message.update(value)
    return message


def event_message(rendered: JsonObject) -> pb.Event:
    """A rendered event (see `rendering.event_json`) as the Event message, in the latest
    schema's types: a version that shows `request` as the request's id (before 2017-05-25)
    gives `request.id`. The exact rendering travels beside it (`rendered_json`)."""
    data = rendered["data"]
    request = rendered["request"]
    assert isinstance(data, dict)
    if isinstance(request, str):
        request = {"id": request}
    assert request is None or isinstance(request, dict)
    created = rendered["created"]
    assert isinstance(created, int)
    message = pb.Event(
        id=str(rendered["id"]),
        created=timestamp(datetime.fromtimestamp(created, UTC)),
        data=pb.EventData(object=_struct(data["object"])),
        livemode=bool(rendered["livemode"]),
        pending_webhooks=int(str(rendered["pending_webhooks"])),
        request=pb.EventRequest(),
        type=str(rendered["type"]),
    )
    if isinstance(rendered.get("api_version"), str):
        message.api_version = str(rendered["api_version"])
    if isinstance(data.get("previous_attributes"), dict):
        message.data.previous_attributes.CopyFrom(_struct(data["previous_attributes"]))
    for name in ("id", "idempotency_key"):
        if request is not None and isinstance(request.get(name), str):
            setattr(message.request, name, request[name])
    return message


def rendered_json(rendered: JsonObject) -> bytes:
    """A rendered event as the JSON a client is shown, byte for byte what a webhook carries:
    the Event message cannot hold every version's shape."""
    return encode_payload(rendered)


def attempt_message(attempt: DeliveryAttempt) -> pb.DeliveryAttempt:
    message = pb.DeliveryAttempt(
        id=attempt.id,
        event=attempt.event_id,
        webhook_endpoint=attempt.endpoint_id,
        attempted_at=timestamp(attempt.attempted_at),
        latency_ms=attempt.latency_ms,
        response_snippet=attempt.response_snippet,
        attempt_number=attempt.attempt_number,
        succeeded=attempt.succeeded,
    )
    if attempt.http_status is not None:
        message.http_status = attempt.http_status
    if attempt.error is not None:
        message.error = attempt.error
    if attempt.next_retry_at is not None:
        message.next_retry_at.CopyFrom(timestamp(attempt.next_retry_at))
    return message


def _page(request: Any) -> PageArgs:
    return PageArgs(
        limit=request.limit or 10,
        starting_after=request.starting_after if request.HasField("starting_after") else None,
        ending_before=request.ending_before if request.HasField("ending_before") else None,
    )


def _time_range(created: common_pb2.CreatedFilter) -> TimeRange:
    return TimeRange(
        gt=filter_bound(created, "gt"),
        gte=filter_bound(created, "gte"),
        lt=filter_bound(created, "lt"),
        lte=filter_bound(created, "lte"),
    )


def _type_filters(values: list[str], param: str) -> list[str]:
    try:
        return [validate_type_filter(value) for value in values]
    except UnknownEventTypeError as error:
        raise invalid(f"Invalid {param}: {error.value!r} is not a Stripe event type.",
                      param) from None  # fmt: skip


class WebhooksServicer(webhooks_pb2_grpc.WebhooksServiceServicer):
    def __init__(self, service: WebhooksService, notifier: EventNotifier) -> None:
        self._service = service
        self._notifier = notifier

    async def CreateWebhookEndpoint(
        self, request: pb.CreateWebhookEndpointRequest, context: Context
    ) -> pb.CreateWebhookEndpointResponse:
        call = call_context(context)

        def answer(endpoint: WebhookEndpoint) -> pb.CreateWebhookEndpointResponse:
            return pb.CreateWebhookEndpointResponse(
                webhook_endpoint=endpoint_message(endpoint, with_secret=True)
            )

        result = await self._service.create_endpoint_once(
            call.account_id,
            client_keyed(context, "CreateWebhookEndpoint", request, serialized(answer)),
            url=request.url,
            enabled_events=list(request.enabled_events),
            api_version=request.api_version if request.HasField("api_version") else None,
            description=request.description if request.HasField("description") else None,
            metadata=requested_metadata(request.metadata),
        )
        return await reply(result, pb.CreateWebhookEndpointResponse, answer, context)

    async def GetWebhookEndpoint(
        self, request: pb.GetWebhookEndpointRequest, context: Context
    ) -> pb.GetWebhookEndpointResponse:
        call = call_context(context)
        endpoint = await self._service.get_endpoint(call.account_id, request.id)
        return pb.GetWebhookEndpointResponse(webhook_endpoint=endpoint_message(endpoint))

    async def UpdateWebhookEndpoint(
        self, request: pb.UpdateWebhookEndpointRequest, context: Context
    ) -> pb.UpdateWebhookEndpointResponse:
        call = call_context(context)
        changes = EndpointChanges(
            url=request.url if request.HasField("url") else None,
            enabled_events=list(request.enabled_events) or None,
            disabled=request.disabled if request.HasField("disabled") else None,
            description=request.description if request.HasField("description") else None,
            set_metadata=requested_metadata(request.metadata),
            unset_metadata_keys=list(request.unset_metadata_keys),
            clear_metadata=request.clear_metadata,
        )

        def answer(endpoint: WebhookEndpoint) -> pb.UpdateWebhookEndpointResponse:
            return pb.UpdateWebhookEndpointResponse(webhook_endpoint=endpoint_message(endpoint))

        result = await self._service.update_endpoint_once(
            call.account_id,
            client_keyed(context, "UpdateWebhookEndpoint", request, serialized(answer)),
            request.id,
            changes,
        )
        return await reply(result, pb.UpdateWebhookEndpointResponse, answer, context)

    async def DeleteWebhookEndpoint(
        self, request: pb.DeleteWebhookEndpointRequest, context: Context
    ) -> pb.DeleteWebhookEndpointResponse:
        call = call_context(context)
        await self._service.delete_endpoint(call.account_id, request.id)
        return pb.DeleteWebhookEndpointResponse(
            deleted_webhook_endpoint=pb.DeletedWebhookEndpoint(id=request.id, deleted=True)
        )

    async def ListWebhookEndpoints(
        self, request: pb.ListWebhookEndpointsRequest, context: Context
    ) -> pb.ListWebhookEndpointsResponse:
        call = call_context(context)
        endpoints, has_more = await self._service.list_endpoints(call.account_id, _page(request))
        return pb.ListWebhookEndpointsResponse(
            data=[endpoint_message(e) for e in endpoints], has_more=has_more
        )

    async def RollWebhookEndpointSecret(
        self, request: pb.RollWebhookEndpointSecretRequest, context: Context
    ) -> pb.RollWebhookEndpointSecretResponse:
        call = call_context(context)
        after = (
            request_timedelta(request.expire_old_secret_after, "expire_old_secret_after")
            if request.HasField("expire_old_secret_after")
            else None
        )

        def answer(
            rolled: tuple[WebhookEndpoint, datetime],
        ) -> pb.RollWebhookEndpointSecretResponse:
            endpoint, old_expires_at = rolled
            return pb.RollWebhookEndpointSecretResponse(
                webhook_endpoint=endpoint_message(endpoint, with_secret=True),
                old_secret_expires_at=timestamp(old_expires_at),
            )

        result = await self._service.roll_secret_once(
            call.account_id,
            client_keyed(context, "RollWebhookEndpointSecret", request, serialized(answer)),
            request.id,
            expire_old_after=after,
        )
        return await reply(result, pb.RollWebhookEndpointSecretResponse, answer, context)

    async def GetEvent(self, request: pb.GetEventRequest, context: Context) -> pb.GetEventResponse:
        call = call_context(context)
        event = await self._service.get_event(call.account_id, request.id)
        render = await self._as_the_account_saw_them(call.account_id, [event])
        rendered = await render(event)
        answer = pb.GetEventResponse(event_json=rendered_json(rendered))
        if not request.json_only:
            answer.event.CopyFrom(event_message(rendered))
        return answer

    async def ListEvents(
        self, request: pb.ListEventsRequest, context: Context
    ) -> pb.ListEventsResponse:
        call = call_context(context)
        if request.HasField("type") and request.types:
            raise invalid("Pass either type or types, not both.", "types")
        types = [request.type] if request.HasField("type") else list(request.types)
        where = EventFilter(
            types=_type_filters(types, "type" if request.HasField("type") else "types"),
            created=_time_range(request.created),
            delivery_success=request.delivery_success
            if request.HasField("delivery_success")
            else None,
        )
        page = _page(request)
        events, has_more = await self._service.list_events(call.account_id, where, page)
        render = await self._as_the_account_saw_them(call.account_id, events)
        # A page before `ending_before` keeps the events nearest its cursor, as its rows were
        # cut (remit.storage.answer_budget): it is answered from the oldest.
        backwards = page.starting_after is None and page.ending_before is not None
        answer = pb.ListEventsResponse()
        answered_bytes = 0
        for event in reversed(events) if backwards else events:
            rendered = await render(event)
            as_json = rendered_json(rendered)
            message = None if request.json_only else event_message(rendered)
            size = len(as_json) + (0 if message is None else message.ByteSize())
            # The budget counts what is answered: an event rendered at an old version takes
            # more than its row (the lists it embeds, its previous object whole), and a caller
            # that does not ask for the JSON alone gets it twice. The first event is answered
            # whatever it takes, so that each page moves on.
            if answer.data_json and answered_bytes + size > PAGE_ANSWER_BYTES:
                has_more = True
                break
            answered_bytes += size
            answer.data_json.append(as_json)
            if message is not None:
                answer.data.append(message)
        if backwards:
            answer.data_json.reverse()
            answer.data.reverse()
        answer.has_more = has_more
        return answer

    async def _as_the_account_saw_them(
        self, account_id: str, events: list[Event]
    ) -> Callable[[Event], Awaitable[JsonObject]]:
        """Renders each of `events` at the account's version of the moment it happened, as its
        webhooks were (Stripe renders an event's data once, for the account, and never again);
        an event from before remit kept that version at the account's current one. One at a
        time, so that a page renders no more of them than it answers."""
        current = None
        if any(event.api_version is None for event in events):
            current = await self._service.account_api_version(account_id)

        async def render(event: Event) -> JsonObject:
            version = event.rendered_version(None, current)
            return await render_event(event, self._service.renderer, version)

        return render

    async def ListDeliveryAttempts(
        self, request: pb.ListDeliveryAttemptsRequest, context: Context
    ) -> pb.ListDeliveryAttemptsResponse:
        call = call_context(context)
        attempts, has_more = await self._service.list_attempts(
            call.account_id,
            event_id=request.event if request.HasField("event") else None,
            endpoint_id=request.webhook_endpoint if request.HasField("webhook_endpoint") else None,
            args=_page(request),
        )
        return pb.ListDeliveryAttemptsResponse(
            data=[attempt_message(a) for a in attempts], has_more=has_more
        )

    async def ResendEvent(
        self, request: pb.ResendEventRequest, context: Context
    ) -> pb.ResendEventResponse:
        call = call_context(context)
        if not request.event or not request.webhook_endpoint:
            raise invalid("Name the event and the webhook_endpoint to resend it to.", "event")
        recorded = await self._service.resend(call.account_id, request.event,
                                              request.webhook_endpoint)  # fmt: skip
        reply = pb.ResendEventResponse(delivery_attempt=attempt_message(recorded.attempt))
        if recorded.disabled is not None:
            reply.webhook_endpoint_disabled_reason = recorded.disabled.value
        return reply

    async def RedeliverFailedEvents(
        self, request: pb.RedeliverFailedEventsRequest, context: Context
    ) -> pb.RedeliverFailedEventsResponse:
        call = call_context(context)
        if not request.webhook_endpoint:
            raise invalid("Name the webhook_endpoint to redeliver to.", "webhook_endpoint")
        since = request_datetime(request.since, "since") if request.HasField("since") else None
        starting_after = request.starting_after if request.HasField("starting_after") else None
        done = await self._service.redeliver(call.account_id, request.webhook_endpoint, since,
                                             starting_after=starting_after)  # fmt: skip
        reply = pb.RedeliverFailedEventsResponse(events_queued=done.queued, has_more=done.has_more)
        if done.last_event is not None:
            reply.last_event = done.last_event
        return reply

    async def StreamEvents(
        self, request: pb.StreamEventsRequest, context: Context
    ) -> AsyncIterator[pb.StreamEventsResponse]:
        call = call_context(context)
        types = _type_filters(list(request.types), "types")
        version = await self._service.account_api_version(call.account_id)
        session = pb.ListenSession(secret=generate_secret(), created=timestamp(self._service.now()))
        if version is not None:
            session.api_version = version
        starting_after = request.starting_after if request.HasField("starting_after") else None
        # Opened before the session goes out: a caller that acts on "ready" (the session)
        # gets every event committed after it.
        events = await LiveEvents.open(self._service, self._notifier, call.account_id,
                                       types=types, starting_after=starting_after)  # fmt: skip
        try:
            yield pb.StreamEventsResponse(session=session)
            async for event in events:
                rendered = await render_event(
                    event, self._service.renderer, event.rendered_version(None, version)
                )
                yield pb.StreamEventsResponse(
                    event=event_message(rendered), event_json=rendered_json(rendered)
                )
        finally:
            events.close()


def webhooks_registration(service: WebhooksService, notifier: EventNotifier) -> ServiceRegistration:
    servicer = WebhooksServicer(service, notifier)
    return ServiceRegistration(
        full_name=pb.DESCRIPTOR.services_by_name["WebhooksService"].full_name,
        add_to_server=lambda server: webhooks_pb2_grpc.add_WebhooksServiceServicer_to_server(
            servicer, server
        ),
    )
