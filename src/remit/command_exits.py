"""Exit codes of the commands that check money (`remit reconcile`, `remit ledger verify`,
`remit settlement-report`), for the scripts that run them unattended, e.g. every night.

A script must tell "the books disagree" from "the check did not run": the second says nothing
about the books. The codes:

0  the command ran and found nothing wrong
1  it ran and found something wrong (mismatches, ledger differences)
2  it refused its input (a malformed or future date, today without --allow-partial, an output
   path it cannot write), or a service it depends on refused or failed (the acquirer)
3  it failed itself (its database unreachable, a bug): it found nothing either way

A failure of the command itself is one line on stderr; its traceback, which may quote SQL and
internal values, goes to the log at DEBUG level only (REMIT_LOG_LEVEL=DEBUG shows it).
"""

import logging
import re
import sys
from typing import Final

from remit.core.logging import mask_sensitive

EXIT_CLEAN: Final = 0
EXIT_FINDINGS: Final = 1
EXIT_REFUSED: Final = 2
EXIT_INTERNAL_FAILURE: Final = 3

log = logging.getLogger(__name__)

# user:password@ in a connection URL a driver quotes.
_URL_CREDENTIALS: Final = re.compile(r"(?<=://)[^/@\s]+@")
_SUMMARY_LENGTH: Final = 200


def summary(error: BaseException) -> str:
    """The error's type and the first line of its message: SQLAlchemy puts the statement and
    its parameters on the lines after it."""
    lines = str(error).strip().splitlines()
    first = _URL_CREDENTIALS.sub("***@", mask_sensitive(lines[0])) if lines else ""
    if len(first) > _SUMMARY_LENGTH:
        first = first[: _SUMMARY_LENGTH - 3] + "..."
    name = type(error).__name__
    return f"{name}: {first}" if first else name


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
