"""A run of a batch sweep says once what it left for the next run: how many items, a few by
name, and the first failure."""

import logging

import psycopg
import pytest

from remit.worker.skipped import SkippedItems

LOG = logging.getLogger("tests.skipped")


def test_a_run_that_left_nothing_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOG.name):
        SkippedItems(LOG, "sweeping").report()
    assert caplog.records == []


def test_what_a_run_left_is_one_record_naming_a_few_with_the_first_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    skipped = SkippedItems(LOG, "sweeping")
    for number in range(8):
        skipped.add(f"item {number}", RuntimeError(f"failure {number}"))
    with caplog.at_level(logging.DEBUG, logger=LOG.name):
        skipped.report()
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        "sweeping: 8 left for the next run (item 0; item 1; item 2; item 3; item 4; and 3 "
        "more); the first failed with:"
    )
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "failure 0"


def test_a_run_whose_database_was_out_of_reach_says_so_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    skipped = SkippedItems(LOG, "sweeping")
    refused = psycopg.OperationalError(
        'connection failed: connection to server at "db", port 5432 failed: Connection refused'
    )
    skipped.add("item 0", refused)
    with caplog.at_level(logging.DEBUG, logger=LOG.name):
        skipped.report()
    [record] = caplog.records
    assert (record.levelno, record.exc_info) == (logging.WARNING, None)
    assert record.getMessage() == (
        "sweeping: 1 left for the next run (item 0): database unavailable (Connection refused)"
    )
