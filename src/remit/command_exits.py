"""Exit codes of every `remit` admin command, for the scripts that run them unattended (`remit
reconcile` every night, `remit accounts keys roll` from a deployment, ...). Not of `remit serve`
and the process commands (`remit core`, ...): they run until stopped, under a supervisor,
though they use 2 and 75 with the meanings below when they cannot start (`remit.serve`,
`remit.bootstrap`).

A script must tell "the books disagree" from "the check did not run", "my input was wrong"
from "try again later", and both from "the command broke": each says something else about what
to do next. The codes:

0  the command did what it was asked, and found nothing wrong
1  it ran and found something wrong (`ledger verify`, `reconcile`: mismatches, ledger
   differences; `held-requests list`: requests held unfinished; `jobs failed`: jobs failed for
   good; `balance-release-failures list`: due funds set aside; `card-fingerprints convert`:
   payment methods or tokens left with a fingerprint not their account's), or what it tried
   did not take (`webhooks resend`: the endpoint refused the delivery; `held-requests retry`:
   the request is still held; `balance-release-failures retry`: the database refused the move
   again)
2  it refused its input (bad arguments, a malformed or future date, an unknown id, a state
   that forbids it, a setting missing or malformed, a database that refuses the URL's user,
   password or database name), or a service it calls (the core, the vault, the acquirer, the
   REST API) refused it or failed
3  it failed itself (a bug): it did nothing, found nothing
75  it could not complete for now, and the same command run later may: a database or a
   service it calls could not be reached, did not answer in time or said to retry (its own
   database down, the core's database restarting, a rate limit), or a lock another
   transaction held through every attempt. EX_TEMPFAIL of sysexits.h, which mail systems and
   job runners already read as "retry later". Nothing about the input needs to change.
130  it was interrupted (Ctrl-C, SIGINT) before it finished: 128 + SIGINT's number, as a shell
   reports a command a signal stopped. What it had committed stays (a reconciliation is stored
   whole or not at all, a migration applied is applied); the rest was not done.

Every failure is one line on stderr, `remit COMMAND: what happened`, with nothing secret in it
(URL credentials, API keys and card numbers masked). A failure of the command itself keeps its
traceback, which may quote SQL and internal values, for the log at DEBUG level only
(REMIT_LOG_LEVEL=DEBUG shows it, masked the same way).
"""

import logging
import sys
from collections.abc import Callable
from typing import Final

from remit.config import ConfigError
from remit.core.errors import ErrorKind, RemitError
from remit.core.logging import mask_sensitive
from remit.storage.driver_errors import database_unavailable
from remit.storage.embedded import EmbeddedDatabaseError
from remit.storage.reachability import DatabasesUnavailableError

EXIT_CLEAN: Final = 0
EXIT_FINDINGS: Final = 1
EXIT_REFUSED: Final = 2
EXIT_INTERNAL_FAILURE: Final = 3
EXIT_TEMPORARY_FAILURE: Final = 75
EXIT_INTERRUPTED: Final = 130

EXIT_CODES_HELP: Final = (
    "Exit codes: 0 done, nothing wrong found; 1 it ran and found something wrong (ledger "
    "verify, reconcile, held requests, failed jobs or set-aside releases listed, card "
    "fingerprints left to convert) or what it "
    "retried did not take (webhooks resend, held-requests retry, balance-release-failures "
    "retry); 2 refused: bad "
    "arguments, an unknown id, a state that forbids it, a setting missing or wrong, or a "
    "service it calls (core, vault, acquirer, API) refused or failed; 3 the command itself "
    "failed (a bug) and did nothing, or a migration failed (migrate: those before it stay "
    "applied); 75 retry later: a database or service out of reach or "
    "too slow, or a lock held by another transaction; 130 interrupted (Ctrl-C) before it "
    "finished. A failure is one line on stderr; REMIT_LOG_LEVEL=DEBUG also logs the "
    "traceback of a failure of the command itself."
)

# A RemitError a command raises itself (not a service's answer) means refused input when it is
# one of these; any other kind is the command's own failure.
REFUSED_KINDS: Final = frozenset(
    {
        ErrorKind.INVALID_ARGUMENT,
        ErrorKind.NOT_FOUND,
        ErrorKind.FAILED_PRECONDITION,
        ErrorKind.ALREADY_EXISTS,
    }
)

log = logging.getLogger(__name__)

_SUMMARY_LENGTH: Final = 200


class CommandRefusedError(Exception):
    """The command refused its input, or a service it calls refused it or failed (exit 2). The
    message is the line an operator reads: what was wrong, or what to do."""


class CommandFailedError(Exception):
    """The command could not complete for a reason it can name that a retry will not mend (exit
    3). The message is said instead of "internal error"."""


class CommandTemporaryFailureError(Exception):
    """The command could not complete for now, and may when run again later (exit 75): a
    database or service out of reach or too slow, a lock another transaction held through
    every attempt. The message is the line an operator reads: what was out of reach, where."""


def summary(error: BaseException) -> str:
    """The error's type and the first line of its message: SQLAlchemy puts the statement and
    its parameters on the lines after it."""
    lines = str(error).strip().splitlines()
    first = mask_sensitive(lines[0]) if lines else ""
    if len(first) > _SUMMARY_LENGTH:
        first = first[: _SUMMARY_LENGTH - 3] + "..."
    name = type(error).__name__
    return f"{name}: {first}" if first else name


def _one_line(message: str) -> str:
    # A refusal's message is written for the operator: all of it, on one line, masked.
    return mask_sensitive(" ".join(line.strip() for line in message.strip().splitlines()))


def refused(command: str, message: str) -> int:
    """Report that `command` refused its input (or a service refused it): one line on stderr;
    return its exit code."""
    print(f"remit {command}: {_one_line(message)}", file=sys.stderr)
    return EXIT_REFUSED


def internal_failure(command: str, error: BaseException) -> int:
    """Report that `command` failed itself (one line on stderr, the traceback in the log at
    DEBUG) and return its exit code."""
    log.debug("remit %s failed", command, exc_info=error)
    print(
        f"remit {command}: internal error, the command did not complete ({summary(error)}); "
        "REMIT_LOG_LEVEL=DEBUG logs the traceback",
        file=sys.stderr,
    )
    return EXIT_INTERNAL_FAILURE


def temporary_failure(command: str, message: str) -> int:
    """Report that `command` could not complete for now (one line on stderr) and return its
    exit code."""
    print(f"remit {command}: {_one_line(message)}", file=sys.stderr)
    return EXIT_TEMPORARY_FAILURE


def databases_unavailable(command: str, error: DatabasesUnavailableError) -> int:
    """Report each database `command` could not use, one line each, and return its exit code:
    a refusal when a server refused a URL's user, password or database (a setting to fix),
    else a temporary failure."""
    for line in error.lines:
        print(f"remit {command}: {_one_line(line)}", file=sys.stderr)
    return EXIT_REFUSED if error.settings_refused else EXIT_TEMPORARY_FAILURE


def interrupted(command: str) -> int:
    """Report that `command` was stopped by Ctrl-C (one line on stderr, no traceback: nothing
    went wrong) and return its exit code."""
    print(f"remit {command}: interrupted before it finished", file=sys.stderr)
    return EXIT_INTERRUPTED


def report_failure(command: str, error: Exception) -> int:
    """Report why `command` stopped with `error`, as the codes above say; return the code."""
    if isinstance(error, CommandRefusedError | ConfigError):
        return refused(command, str(error))
    if isinstance(error, CommandTemporaryFailureError):
        return temporary_failure(command, str(error))
    if isinstance(error, DatabasesUnavailableError):
        return databases_unavailable(command, error)
    if isinstance(error, RemitError) and error.kind in REFUSED_KINDS:
        return refused(command, error.message)
    if isinstance(error, RemitError) and error.should_retry:
        return temporary_failure(command, error.message)
    if isinstance(error, EmbeddedDatabaseError) and error.temporary:
        return temporary_failure(command, str(error))
    if isinstance(error, CommandFailedError | EmbeddedDatabaseError):
        # (An embedded PostgreSQL that refused to start: its message says why, and where its
        # log is; the command did nothing.)
        log.debug("remit %s failed", command, exc_info=error)
        print(f"remit {command}: {_one_line(str(error))}", file=sys.stderr)
        return EXIT_INTERNAL_FAILURE
    rpc_error = _rpc_error_type()
    if rpc_error is not None and isinstance(error, rpc_error):
        # A call no command put into words: still a service's answer, not the command's fault.
        message = f"a call to the platform failed: {summary(error)}"
        if rpc_status_is_temporary(error):
            return temporary_failure(command, message)
        return refused(command, message)
    if database_unavailable(error):
        # Its database went away while it ran (it was there when the command began): the
        # command did not complete, and may once the database is back.
        log.debug("remit %s failed", command, exc_info=error)
        return temporary_failure(
            command,
            f"a database became unavailable, the command did not complete ({summary(error)})",
        )
    return internal_failure(command, error)


def run_reporting_failures(command: str, run: Callable[[], int]) -> int:
    """`run()`'s exit code, or the code of the failure it raised, reported on stderr; Ctrl-C
    (KeyboardInterrupt) is reported as an interruption. SystemExit passes through."""
    try:
        return run()
    except KeyboardInterrupt:
        return interrupted(command)
    except Exception as error:
        return report_failure(command, error)


# The gRPC status codes that say "not now" rather than "not this": nothing answered, the
# answer came too late, or the service is rationing its calls.
_TEMPORARY_RPC_CODES: Final = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"})


def rpc_status_is_temporary(error: Exception) -> bool:
    """Whether a failed gRPC call (`grpc.RpcError`, which is also a `grpc.Call`) failed for a
    reason that may pass: a retry later may succeed."""
    code = getattr(error, "code", None)
    status = code() if callable(code) else None
    return getattr(status, "name", None) in _TEMPORARY_RPC_CODES


def _rpc_error_type() -> type[Exception] | None:
    # Looked up, not imported: `remit --help` and the process commands need not load gRPC.
    grpc = sys.modules.get("grpc")
    found = getattr(grpc, "RpcError", None)
    return found if isinstance(found, type) and issubclass(found, Exception) else None
