"""The snippet an attempt keeps of a real response is masked before it is cut."""

import pytest

from remit.webhooks import sender as sender_module
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


async def test_a_fault_reading_an_answer_is_not_taken_for_the_endpoints_bad_url(
    start_receiver: StartReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ValueError once the endpoint answered is remit's own, raised for the delivery job to
    retry, not recorded as the endpoint's failed attempt that would count towards disabling
    it."""

    def faulty(raw: bytes, limit: int, *, more: bool) -> str:
        raise ValueError("a fault of remit's")

    monkeypatch.setattr(sender_module, "masked_snippet", faulty)
    receiver = await start_receiver([Reply(status=200, body="ok")])
    sender = WebhookSender(UrlPolicy.from_settings(development=False, allowed=["127.0.0.1"]))
    try:
        with pytest.raises(ValueError, match="a fault of remit's"):
            await sender.post(receiver.url, b"{}", {})
    finally:
        await sender.close()
