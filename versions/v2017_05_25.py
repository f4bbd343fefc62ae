"""2017-05-25: events name the request that caused them with its id and idempotency key."""

from remit.core.jsonview import JsonObject
from remit.versioning.change import RenderContext, VersionChange
from remit.versioning.schema_edit import set_property


class NestEventRequestIdAndIdempotencyKey(VersionChange):
    """`Event.request` is an object `{"id", "idempotency_key"}`; before 2017-05-25 it was the
    request id as a string (or null).

    Source: https://docs.stripe.com/changelog/2017-05-25/events-specify-request-id-idempotency-key
    """

    resources = ("event",)
    fields = ("request", "request.id")

    def downgrade(self, obj: JsonObject, context: RenderContext) -> None:
        request = obj.get("request")
        if isinstance(request, dict):
            request_id = request.get("id")
            obj["request"] = request_id if isinstance(request_id, str) else None

    def downgrade_schema(self, schemas: dict[str, JsonObject]) -> None:
        set_property(schemas, "event", "request", {"anyOf": [{"type": "string"}, {"type": "null"}]})
