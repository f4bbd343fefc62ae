"""Why an endpoint is disabled reaches remit's operators (the gRPC message, `remit webhooks
endpoints`), never a REST client: Stripe's webhook_endpoint has no such field."""

from datetime import UTC, datetime

import pytest

from remit.core.jsonview import internal_fields_left_out, to_json
from remit.versioning.render import render
from remit.webhooks.domain import DisabledReason, EndpointStatus, WebhookEndpoint
from remit.webhooks.grpc import endpoint_message
from remit.webhooks.tools import endpoint_line
from versions import LATEST_VERSION

BEFORE_BASIL = "2025-03-01.dashboard"  # a version whose changes read fields kept off the wire


def _endpoint(status: EndpointStatus, reason: DisabledReason | None) -> WebhookEndpoint:
    return WebhookEndpoint(
        id="we_1",
        account_id="acct_1",
        url="https://example.com/hook",
        enabled_events=("*",),
        api_version=None,
        description=None,
        metadata={},
        status=status,
        disabled_reason=reason,
        secret="whsec_1",
        rolled_secrets=(),
        failing_since=None,
        rate_limited_until=None,
        created_at=datetime(2026, 11, 1, tzinfo=UTC),
    )


def test_the_grpc_message_says_why_an_endpoint_is_disabled() -> None:
    gone = endpoint_message(_endpoint(EndpointStatus.DISABLED, DisabledReason.GONE))
    assert gone.disabled_reason == "gone"
    assert endpoint_line(gone) == "we_1  disabled (gone)  https://example.com/hook"
    enabled = endpoint_message(_endpoint(EndpointStatus.ENABLED, None))
    assert not enabled.HasField("disabled_reason")
    assert endpoint_line(enabled) == "we_1  enabled  https://example.com/hook"


@pytest.mark.parametrize("version", [LATEST_VERSION, BEFORE_BASIL])
def test_the_reason_never_reaches_a_rest_client(version: str) -> None:
    message = endpoint_message(_endpoint(EndpointStatus.DISABLED, DisabledReason.FAILING))
    assert to_json(message)["disabled_reason"] == "failing"  # for the versioning engine
    assert "disabled_reason" not in render(to_json(message), version)
    with internal_fields_left_out():
        assert "disabled_reason" not in to_json(message)
