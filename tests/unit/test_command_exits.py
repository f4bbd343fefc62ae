"""A command that fails itself says so in one line, without what follows in the error."""

import logging

import pytest

from remit.command_exits import EXIT_INTERNAL_FAILURE, internal_failure, summary
from remit.core.logging import level_from_env


def test_the_summary_is_the_first_line_without_credentials() -> None:
    error = RuntimeError(
        "(psycopg.OperationalError) connection to postgresql://remit:s3cret@db:5432/remit "
        "failed\n[SQL: SELECT secret FROM t WHERE pan = %(pan)s]\n[parameters: {'pan': 1}]"
    )
    line = summary(error)
    assert line.startswith("RuntimeError: (psycopg.OperationalError) connection to ")
    assert "s3cret" not in line
    assert "postgresql://***@db:5432/remit" in line
    assert "SQL" not in line
    assert "parameters" not in line
    assert summary(ValueError()) == "ValueError"
    assert len(summary(ValueError("x" * 1000))) < 250


def test_an_internal_failure_is_one_line_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    code = internal_failure("reconcile", ConnectionRefusedError(111, "Connection refused"))
    assert code == EXIT_INTERNAL_FAILURE
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("remit reconcile: internal error")
    assert "Connection refused" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("value", "level"),
    [(None, logging.INFO), ("debug", logging.DEBUG), ("WARNING", logging.WARNING),
     ("loud", logging.INFO)],
)  # fmt: skip
def test_the_log_level_comes_from_the_environment(value: str | None, level: int) -> None:
    assert level_from_env({} if value is None else {"REMIT_LOG_LEVEL": value}) == level
