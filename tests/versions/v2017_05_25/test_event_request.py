from remit.core.jsonview import to_json
from remit.versioning import render_event
from remit_api.webhooks.v1 import webhooks_pb2 as wh
from tests.support import resources
from tests.support.versions import top_level_difference, version_before
from versions.v2017_05_25 import NestEventRequestIdAndIdempotencyKey

AT = "2017-05-25"
BEFORE = version_before(AT)
RELATED = resources.related_lists()


def test_event_request_is_the_request_id_string_before_2017_05_25_and_an_object_from_it() -> None:
    event = to_json(resources.event(to_json(resources.payment_intent())))
    before, at = render_event(event, BEFORE, RELATED), render_event(event, AT, RELATED)
    assert NestEventRequestIdAndIdempotencyKey.version == AT
    difference = top_level_difference(before, at)
    assert difference.pop("request") == ("req_abc", {"id": "req_abc", "idempotency_key": "key-1"})
    assert difference == {"api_version": (BEFORE, AT)}


def test_an_event_without_a_request_has_a_null_request_at_both_versions() -> None:
    message = resources.event(to_json(resources.payment_intent()))
    message.ClearField("request")
    event = to_json(message)
    assert render_event(event, BEFORE, RELATED)["request"] is None
    assert render_event(event, AT, RELATED)["request"] is None


def test_an_event_request_without_an_id_renders_as_null_before_2017_05_25() -> None:
    message = resources.event(to_json(resources.payment_intent()))
    message.request.CopyFrom(wh.EventRequest(idempotency_key="key-only"))
    assert render_event(to_json(message), BEFORE, RELATED)["request"] is None
