"""An event without `previous_attributes` (any but a `*.updated` event) leaves the key out of
`data`: Stripe's schema has it optional, not nullable, at every version."""

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from remit import versioning
from remit.core.jsonview import JsonObject, JsonValue, to_json
from remit.webhooks.domain import Event
from remit.webhooks.grpc import event_message, rendered_json
from remit.webhooks.rendering import event_json, render_event
from versions import KNOWN_VERSIONS, LATEST_VERSION

CREATED = Event(
    id="evt_1",
    account_id="acct_1",
    type="customer.created",
    created_at=datetime(2026, 11, 1, 12, 0, tzinfo=UTC),
    livemode=False,
    data_object={"id": "cus_1", "object": "customer", "balance": 0, "metadata": {}},
    previous_attributes=None,
    request_id="req_1",
    idempotency_key=None,
    pending_webhooks=1,
)


def _data(rendered: JsonValue) -> JsonObject:
    assert isinstance(rendered, dict)
    data = rendered["data"]
    assert isinstance(data, dict)
    return data


def test_the_latest_schema_leaves_the_key_out() -> None:
    rendered = event_json(CREATED, api_version=LATEST_VERSION)
    assert "previous_attributes" not in _data(rendered)
    assert "previous_attributes" not in _data(json.loads(rendered_json(rendered)))


@pytest.mark.parametrize("version", KNOWN_VERSIONS)
def test_every_version_leaves_the_key_out(version: str) -> None:
    rendered = versioning.render_event(event_json(CREATED, api_version=version), version)
    assert "previous_attributes" not in _data(rendered)


@pytest.mark.anyio
async def test_the_event_without_a_renderer_leaves_the_key_out() -> None:
    assert "previous_attributes" not in _data(await render_event(CREATED, None, None))


def test_the_event_message_as_json_leaves_the_key_out() -> None:
    """What GET /v1/events shows from a core that sends the message alone."""
    shown = to_json(event_message(event_json(CREATED, api_version=LATEST_VERSION)))
    assert "previous_attributes" not in _data(shown)


def test_an_update_keeps_them() -> None:
    updated = replace(CREATED, type="customer.updated", previous_attributes={"balance": 5})
    rendered = event_json(updated, api_version=LATEST_VERSION)
    assert _data(rendered)["previous_attributes"] == {"balance": 5}
    assert _data(to_json(event_message(rendered)))["previous_attributes"] == {"balance": 5}
