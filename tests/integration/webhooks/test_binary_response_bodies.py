"""An endpoint's answer is recorded whatever bytes its body holds: a NUL byte (which every gzip
stream has, and which PostgreSQL's text refuses) is kept out of the stored snippet, so that the
attempt is recorded once, not POSTed again and again by the job's retries."""

import gzip
from datetime import UTC, datetime

import pytest

from remit.webhooks.delivery import outcome_of
from remit.webhooks.sender import HttpResult
from remit.webhooks.service import PageArgs
from tests.integration.webhooks.conftest import Bench, StartReceiver
from tests.support.receiver import Reply

pytestmark = pytest.mark.anyio

GZIP_HEADERS = {"Content-Encoding": "gzip", "Content-Type": "application/json"}


def gzipped(status: int) -> Reply:
    """An answer compressed although the request asked for none, as some servers send."""
    return Reply(status=status, raw_body=gzip.compress(b'{"received": true}'), headers=GZIP_HEADERS)


async def test_a_gzip_compressed_2xx_is_recorded_as_delivered(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver(lambda _: gzipped(200))
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    # Time enough for the job's retries after failed runs, were the record to fail.
    for _ in range(4):
        await bench.worker.drain()
        bench.clock.advance(3700)
    assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"
    assert len(receiver.received) == 1
    [attempt] = await bench.attempts(event_id)
    assert attempt.succeeded
    assert "\x00" not in attempt.response_snippet


async def test_a_2xx_whose_body_holds_a_nul_is_recorded_with_the_nul_replaced(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver(lambda _: Reply(200, raw_body=b"ok\x00done"))
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    await bench.worker.drain()
    assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"
    [attempt] = await bench.attempts(event_id)
    assert attempt.response_snippet == "ok\ufffddone"
    assert len(receiver.received) == 1


async def test_a_gzip_compressed_failure_is_recorded_and_counts_towards_disabling(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver(lambda _: gzipped(502))
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    await bench.worker.drain()
    [attempt] = await bench.attempts(event_id)
    assert (attempt.http_status, attempt.succeeded) == (502, False)
    assert attempt.next_retry_at is not None
    failing = await bench.service.get_endpoint(bench.account_id, endpoint.id)
    assert failing.failing_since == attempt.attempted_at
    assert await bench.delivery_status(event_id, endpoint.id) == "pending"
    assert len(receiver.received) == 1


async def test_a_resend_answered_with_a_gzip_body_is_recorded(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver(lambda index: gzipped(200) if index else Reply(500))
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    await bench.worker.drain()
    bench.clock.advance(1)
    resent = (await bench.service.resend(bench.account_id, event_id, endpoint.id)).attempt
    assert (resent.http_status, resent.succeeded, resent.attempt_number) == (200, True, 2)
    assert "\x00" not in resent.response_snippet
    assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"
    listed, _ = await bench.service.list_attempts(
        bench.account_id, event_id=event_id, endpoint_id=None, args=PageArgs()
    )
    assert [a.http_status for a in listed] == [200, 500]


async def test_deliveries_ask_for_an_uncompressed_answer(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """A body compressed is not read (only its snippet is kept), and its snippet would be
    unreadable: deliveries ask for none."""
    receiver = await start_receiver()
    await bench.endpoint(receiver.url)
    await bench.record()
    await bench.worker.drain()
    [received] = receiver.received
    assert received.headers["Accept-Encoding"] == "identity"


def test_an_attempts_error_and_snippet_are_stored_without_a_nul() -> None:
    """What any sender hands back is made storable before it is recorded, the error too."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    result = HttpResult(None, 3, "partial\x00", "ClientPayloadError: bad chunk \x00\x01", None)
    outcome = outcome_of(result, now)
    assert outcome.response_snippet == "partial\ufffd"
    assert outcome.error == "ClientPayloadError: bad chunk \ufffd\x01"
