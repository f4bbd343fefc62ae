"""What a request is told when recording what the network did fails after the network acted."""

import asyncio
import logging

import psycopg.errors
import pytest

from remit.core.errors import ErrorKind, RemitError
from remit.payments.after_the_network import recorded_after_the_network


async def _raising(error: BaseException) -> None:
    raise error


def test_a_refusal_after_the_network_is_a_retryable_internal_error() -> None:
    refusal = RemitError(message="reservation in an unexpected state", code="ledger_state")
    with pytest.raises(RemitError) as raised:
        asyncio.run(recorded_after_the_network(_raising(refusal), what="a capture"))
    assert raised.value.kind is ErrorKind.INTERNAL
    assert raised.value.should_retry is True
    assert raised.value.__cause__ is refusal


def test_a_database_limit_after_the_network_is_an_internal_error_that_invites_no_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    over_limit = psycopg.errors.ProgramLimitExceeded("index row size exceeds maximum")
    with caplog.at_level(logging.ERROR), pytest.raises(RemitError) as raised:
        asyncio.run(recorded_after_the_network(_raising(over_limit), what="an authorization"))
    # Not the client's mistake (a 400 the SDKs never retry, though the card was charged), and
    # not worth a retry either: it fails the same way every time.
    assert raised.value.kind is ErrorKind.INTERNAL
    assert raised.value.error_type == "api_error"
    assert raised.value.should_retry is False
    assert "held" in raised.value.message
    assert raised.value.__cause__ is over_limit
    assert any("an authorization" in record.getMessage() for record in caplog.records)


def test_other_errors_pass_through_unchanged() -> None:
    lost = psycopg.errors.AdminShutdown("terminating connection")
    with pytest.raises(psycopg.errors.AdminShutdown):
        asyncio.run(recorded_after_the_network(_raising(lost), what="a refund"))
