"""A database outage in work that runs again and again is one line when it begins, a reminder
while it lasts and one line when it ends, never a traceback per attempt; any other failure
keeps its traceback."""

import logging

import psycopg
import pytest

from remit.storage.outages import OutageLog, log_failure

LOG = logging.getLogger("tests.outages")


def _connection_refused() -> psycopg.OperationalError:
    return psycopg.OperationalError(
        'connection failed: connection to server at "db", port 5432 failed: Connection refused'
        "\n\tIs the server running on that host and accepting TCP/IP connections?"
    )


def test_an_outage_is_a_line_when_it_begins_a_reminder_a_minute_and_a_line_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    outage = OutageLog(LOG, "periodic task prune", clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger=LOG.name):
        for _ in range(30):  # a run every second for half a minute
            outage.failed(_connection_refused())
            now[0] += 1.0
        assert [r.getMessage() for r in caplog.records] == [
            "periodic task prune failed: database unavailable (Connection refused); trying again"
        ]
        now[0] = 61.0
        outage.failed(_connection_refused())
        now[0] = 70.0
        outage.succeeded()
        outage.succeeded()  # said once
    assert [r.getMessage() for r in caplog.records][1:] == [
        "periodic task prune still failing: database unavailable for 61s, 31 attempts "
        "(Connection refused); trying again",
        "periodic task prune works again: database back after 70s, 31 failed attempts",
    ]
    assert not any(record.exc_info for record in caplog.records)
    assert caplog.records[0].levelno == logging.ERROR


def test_a_failure_that_is_not_the_databases_keeps_its_traceback_every_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = OutageLog(LOG, "periodic task prune")
    with caplog.at_level(logging.INFO, logger=LOG.name):
        for _ in range(2):
            try:
                raise KeyError("bug")
            except KeyError as error:
                outage.failed(error)
    assert [r.getMessage() for r in caplog.records] == ["periodic task prune failed"] * 2
    assert all(record.exc_info for record in caplog.records)


def test_a_one_off_failure_of_the_database_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=LOG.name):
        log_failure(LOG, "completing payment_intents/create key-1", _connection_refused())
        log_failure(LOG, "completing payment_intents/create key-2", ValueError("bug"))
    first, second = caplog.records
    assert first.getMessage() == (
        "completing payment_intents/create key-1 failed: database unavailable (Connection refused)"
    )
    assert first.exc_info is None
    assert second.exc_info is not None


def test_an_outage_that_fails_only_some_of_the_work_ends_once_it_has_settled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A pool short of connections under load fails some requests while others go through:
    each success must not end the outage, or every failure after one would begin another."""
    now = [0.0]
    outage = OutageLog(LOG, "serving requests", clock=lambda: now[0], settle_s=10.0)
    with caplog.at_level(logging.INFO, logger=LOG.name):
        for _ in range(5):
            outage.failed(_connection_refused())
            now[0] += 1.0
            outage.succeeded()
        assert len(caplog.records) == 1
        now[0] = 14.0
        outage.succeeded()
    assert [r.getMessage() for r in caplog.records][1:] == [
        "serving requests works again: database back after 14s, 5 failed attempts"
    ]
