"""A delivery never reaches an internal address the policy refuses, however its URL spells the
host: the check reads the host as aiohttp connects to it, and every connection is checked."""

import aiohttp
import pytest

from remit.webhooks.sender import PolicyConnector, WebhookSender
from remit.webhooks.urls import BlockedAddressError, UrlPolicy
from tests.integration.webhooks.conftest import StartReceiver
from tests.support.text import full_width

pytestmark = pytest.mark.anyio

REFUSE_INTERNAL = UrlPolicy(allow_internal=False)


@pytest.mark.parametrize(
    "host",
    [
        f"{full_width('127')}.0.0.1",
        "127\u30020\u30020\u30021",  # ideographic full stops
        "127\uff0e0\uff0e0\uff0e1",  # full-width full stops
        full_width("localhost"),
    ],
)
async def test_a_host_spelt_in_unicode_is_refused_as_the_address_it_connects_to(
    start_receiver: StartReceiver, host: str
) -> None:
    receiver = await start_receiver()
    port = receiver.url.split(":")[2].split("/")[0]
    sender = WebhookSender(REFUSE_INTERNAL)
    try:
        result = await sender.post(f"http://{host}:{port}/hook", b"{}", {})
    finally:
        await sender.close()
    assert result.http_status is None
    assert result.error is not None
    assert "blocked" in result.error
    assert receiver.received == []


async def test_the_connector_refuses_a_literal_internal_address_by_itself(
    start_receiver: StartReceiver,
) -> None:
    """No check made before the POST is needed: whatever a future parse difference lets
    through, the connection itself is refused."""
    receiver = await start_receiver()
    async with aiohttp.ClientSession(connector=PolicyConnector(REFUSE_INTERNAL)) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as refused:
            await session.post(receiver.url, data=b"{}")
    assert isinstance(refused.value.os_error, BlockedAddressError)
    assert receiver.received == []

    allowed = UrlPolicy.from_settings(development=False, allowed=["127.0.0.1"])
    async with (
        aiohttp.ClientSession(connector=PolicyConnector(allowed)) as session,
        session.post(receiver.url, data=b"{}") as response,
    ):
        assert response.status == 200
    assert len(receiver.received) == 1
