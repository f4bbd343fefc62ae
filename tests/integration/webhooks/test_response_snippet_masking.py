"""The snippet an attempt keeps of a real response is masked before it is cut."""

import pytest

from remit.webhooks.sender import SNIPPET_BYTES, WebhookSender
from remit.webhooks.urls import UrlPolicy
from tests.integration.webhooks.conftest import StartReceiver
from tests.support.receiver import Reply

pytestmark = pytest.mark.anyio


async def test_a_card_number_straddling_the_snippets_cut_is_masked(
    start_receiver: StartReceiver,
) -> None:
    card = "4111111111111111"
    receiver = await start_receiver([Reply(status=500, body="x" * 505 + card + "y" * 2000)])
    sender = WebhookSender(UrlPolicy.from_settings(development=False, allowed=["127.0.0.1"]))
    try:
        result = await sender.post(receiver.url, b"{}", {})
    finally:
        await sender.close()
    assert result.http_status == 500
    assert len(result.response_snippet.encode("utf-8")) == SNIPPET_BYTES
    assert "4111111" not in result.response_snippet
    assert result.response_snippet.startswith("x" * 505 + "[card *")
