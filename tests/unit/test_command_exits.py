"""A command that fails itself says so in one line, without what follows in the error."""

import logging
import os
from pathlib import Path

import grpc
import psycopg
import pytest

from remit.cli import main
from remit.command_exits import (
    EXIT_INTERNAL_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_REFUSED,
    EXIT_TEMPORARY_FAILURE,
    CommandFailedError,
    CommandRefusedError,
    CommandTemporaryFailureError,
    internal_failure,
    report_failure,
    run_reporting_failures,
    summary,
)
from remit.config import ConfigError, PlatformConfig
from remit.core.errors import ErrorKind, RemitError, not_found
from remit.core.logging import level_from_env
from remit.databases import ResolvedDatabases
from remit.storage.embedded import EmbeddedDatabaseError
from remit.storage.migration_locks import MigrationLockTimeoutError


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


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (CommandRefusedError("acct_1 has no working key key_2"), EXIT_REFUSED,
         "remit accounts keys revoke: acct_1 has no working key key_2"),
        (ConfigError("REMIT_CORE_PORT must be a port number, got 'x'"), EXIT_REFUSED,
         "remit accounts keys revoke: REMIT_CORE_PORT must be a port number, got 'x'"),
        (not_found("account", "acct_1"), EXIT_REFUSED,
         "remit accounts keys revoke: No such account: 'acct_1'"),
        (RemitError("wrong state", kind=ErrorKind.FAILED_PRECONDITION), EXIT_REFUSED,
         "remit accounts keys revoke: wrong state"),
        # Raised by the command itself, an error of any other kind is its own failure.
        (RemitError("database gone", kind=ErrorKind.UNAVAILABLE), EXIT_INTERNAL_FAILURE,
         "remit accounts keys revoke: internal error, the command did not complete "
         "(RemitError: database gone); REMIT_LOG_LEVEL=DEBUG logs the traceback"),
        (CommandFailedError("migration 0042 could not lock a table"), EXIT_INTERNAL_FAILURE,
         "remit accounts keys revoke: migration 0042 could not lock a table"),
        (EmbeddedDatabaseError("the embedded PostgreSQL in /d/pg-core did not start: why "
                               "(its log: /d/pg-core/log)", temporary=False),
         EXIT_INTERNAL_FAILURE,
         "remit accounts keys revoke: the embedded PostgreSQL in /d/pg-core did not start: why "
         "(its log: /d/pg-core/log)"),
        (EmbeddedDatabaseError("the embedded PostgreSQL in /d/pg-core did not start: it was "
                               "not ready within 10s (its log: /d/pg-core/log)", temporary=True),
         EXIT_TEMPORARY_FAILURE,
         "remit accounts keys revoke: the embedded PostgreSQL in /d/pg-core did not start: it "
         "was not ready within 10s (its log: /d/pg-core/log)"),
        (KeyError("bug"), EXIT_INTERNAL_FAILURE,
         "remit accounts keys revoke: internal error, the command did not complete "
         "(KeyError: 'bug'); REMIT_LOG_LEVEL=DEBUG logs the traceback"),
        # Retry later: not the input's fault, and not a bug.
        (CommandTemporaryFailureError("the core is not reachable at 127.0.0.1:7421"),
         EXIT_TEMPORARY_FAILURE,
         "remit accounts keys revoke: the core is not reachable at 127.0.0.1:7421"),
        (RemitError("An internal service is unavailable; please retry.",
                    kind=ErrorKind.UNAVAILABLE, should_retry=True), EXIT_TEMPORARY_FAILURE,
         "remit accounts keys revoke: An internal service is unavailable; please retry."),
        (psycopg.OperationalError("connection to server at \"db\", port 5432 failed: "
                                  "Connection refused\n\tIs the server running?"),
         EXIT_TEMPORARY_FAILURE,
         "remit accounts keys revoke: a database became unavailable, the command did not "
         "complete (OperationalError: connection to server at \"db\", port 5432 failed: "
         "Connection refused)"),
    ],
)  # fmt: skip
def test_a_failure_is_reported_in_one_line_with_the_code_of_its_kind(
    error: Exception, code: int, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report_failure("accounts keys revoke", error) == code
    assert capsys.readouterr().err == line + "\n"


def test_a_refusal_is_one_line_and_masks_what_is_secret(
    capsys: pytest.CaptureFixture[str],
) -> None:
    refusal = CommandRefusedError(
        "cannot reach postgresql://remit:s3cret@db/remit\nwith sk_test_4eC39HqLyjWDarjtT1zdp7dc"
    )
    assert report_failure("migrate", refusal) == EXIT_REFUSED
    assert capsys.readouterr().err == (
        "remit migrate: cannot reach postgresql://***@db/remit with sk_test_********p7dc\n"
    )


def test_ctrl_c_is_an_interruption_in_one_line_with_130(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def waiting() -> int:
        raise KeyboardInterrupt

    assert run_reporting_failures("reconcile", waiting) == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == "remit reconcile: interrupted before it finished\n"


@pytest.mark.parametrize(
    "command",
    [
        ["migrate"], ["accounts", "create"], ["accounts", "upgrade"],
        ["accounts", "keys", "list"], ["accounts", "keys", "roll"],
        ["vault", "rotate-key"], ["vault", "remove-key-version"],
        ["vault", "declare-key-version-lost"], ["vault", "audit"], ["ledger", "verify"],
        ["reconcile"], ["reconciliations"], ["settlement-report"], ["listen"], ["trigger"],
        ["held-requests", "list"], ["held-requests", "retry"], ["jobs", "failed"],
        ["balance-release-failures", "list"], ["balance-release-failures", "retry"],
        ["webhooks", "resend"], ["radar", "rules", "add"], ["radar", "lists", "list"],
        ["versions", "list"],
    ],
)  # fmt: skip
def test_every_admin_command_documents_the_exit_codes_in_its_help(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "Exit codes: 0 done, nothing wrong found; 1 it ran and found something wrong" in shown
    assert "75 retry later: a database or service out of reach or too slow" in shown
    assert "130 interrupted (Ctrl-C) before it finished" in shown


@pytest.mark.parametrize(
    "command",
    [
        ["serve"], ["core"], ["vault"], ["worker"], ["accounts"], ["held-requests"], ["jobs"],
        ["balance-release-failures"],
    ],
)  # fmt: skip
def test_long_running_commands_and_command_groups_have_no_exit_code_epilog(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    assert "Exit codes: 0 done" not in " ".join(capsys.readouterr().out.split())


def test_exit_75_is_ex_tempfail_of_sysexits() -> None:
    assert EXIT_TEMPORARY_FAILURE == os.EX_TEMPFAIL == 75


@pytest.mark.parametrize(
    ("code", "exit_code"),
    [(grpc.StatusCode.UNAVAILABLE, EXIT_TEMPORARY_FAILURE),
     (grpc.StatusCode.DEADLINE_EXCEEDED, EXIT_TEMPORARY_FAILURE),
     (grpc.StatusCode.RESOURCE_EXHAUSTED, EXIT_TEMPORARY_FAILURE),
     (grpc.StatusCode.PERMISSION_DENIED, EXIT_REFUSED)],
)  # fmt: skip
def test_a_call_left_unworded_is_temporary_when_its_status_says_not_now(
    code: grpc.StatusCode, exit_code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    error = grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "no")
    assert report_failure("reconciliations", error) == exit_code
    assert capsys.readouterr().err.startswith("remit reconciliations: a call to the platform ")


def test_a_migration_lock_held_through_every_attempt_is_a_temporary_failure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another transaction was in the way: once it ends, the same `remit migrate` passes."""
    import remit.databases

    def held(config: PlatformConfig) -> None:
        raise MigrationLockTimeoutError("migration 0042 could not lock a table it changes")

    monkeypatch.setattr(remit.databases, "resolve_databases", ResolvedDatabases)
    monkeypatch.setattr(remit.databases, "migrate_all", held)
    monkeypatch.setenv("REMIT_DATA_DIR", str(tmp_path))
    assert main(["migrate"]) == EXIT_TEMPORARY_FAILURE
    assert capsys.readouterr().err == (
        "remit migrate: migration 0042 could not lock a table it changes\n"
    )


def test_a_command_run_in_process_leaves_the_logging_as_it_found_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`main` logs to the stderr of its run (here, this test's captured stream, closed once the
    test ends): a handler left on it would fail every record logged afterwards ("Logging
    error ... I/O operation on closed file")."""
    root = logging.getLogger()
    alembic = logging.getLogger("alembic")
    before = (root.handlers[:], root.level, alembic.level)
    assert main(["jobs", "failed", "--limit", "0"]) == 2
    assert (root.handlers, root.level, alembic.level) == before
    assert capsys.readouterr().err == (
        "remit jobs failed: --limit must be between 1 and 1000, got 0\n"
    )


def test_a_failure_remit_serve_has_no_words_for_is_one_line_masked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug in `remit serve` itself: one line, as every failure to start is, exit 1 (its
    traceback only at DEBUG)."""
    import remit.serve

    def broken(config: PlatformConfig) -> int:
        raise RuntimeError("card 4242424242424242 at postgresql://remit:s3cret@db/remit\nmore")

    monkeypatch.setattr(remit.serve, "serve", broken)
    monkeypatch.setenv("REMIT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("REMIT_LOG_LEVEL", raising=False)
    assert main(["serve"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("remit serve: failed (RuntimeError: card ")
    assert err.endswith("; REMIT_LOG_LEVEL=DEBUG logs the traceback\n")
    assert "4242424242424242" not in err
    assert "s3cret" not in err
