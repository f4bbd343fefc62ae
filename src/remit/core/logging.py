"""Process-wide logging with a filter that masks card numbers and secrets.

Card numbers must never reach a log line, whatever code wrote it: the filter rewrites every
record's final message, its traceback and its stack, masking each 13-19 digit run (spaces or
dashes allowed between digits) that passes the Luhn check, keeping only the last four digits.
Secrets that would let a reader act as someone are masked too: secret and restricted API keys
(`sk_live_`, `sk_test_`, `rk_...`), webhook signing secrets (`whsec_`), PaymentIntent client
secrets (`pi_..._secret_...`, whose intent id stays readable) and the user and password of a
connection URL (`postgresql://***@host/db`), which a database driver's error may quote.
Publishable keys are public and stay as they are.
"""

import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterator, Mapping
from typing import Final

_CANDIDATE: Final = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def mask_card_numbers(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        digits = re.sub(r"[ -]", "", match.group(0))
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            return f"[card ****{digits[-4:]}]"
        return match.group(0)

    return _CANDIDATE.sub(replace, text)


_MASK: Final = "********"
_BOUNDARY: Final = r"(?<![A-Za-z0-9_])"
_API_KEY: Final = re.compile(_BOUNDARY + r"((?:sk|rk)_(?:live|test)_)([A-Za-z0-9]+)")
_SIGNING_SECRET: Final = re.compile(_BOUNDARY + r"(whsec_)[A-Za-z0-9+/=]+")
_CLIENT_SECRET: Final = re.compile(_BOUNDARY + r"((?:pi|seti)_[A-Za-z0-9]+_secret_)[A-Za-z0-9]+")


def mask_secrets(text: str) -> str:
    """`text` with its API keys (but publishable ones), webhook signing secrets and client
    secrets masked. Keys keep their last four characters, as Stripe echoes a key."""
    text = _API_KEY.sub(lambda m: f"{m.group(1)}{_MASK}{m.group(2)[-4:]}", text)
    text = _SIGNING_SECRET.sub(lambda m: f"{m.group(1)}{_MASK}", text)
    return _CLIENT_SECRET.sub(lambda m: f"{m.group(1)}{_MASK}", text)


# user:password@ (or user@) after a URL's scheme.
_URL_CREDENTIALS: Final = re.compile(r"(?<=://)[^/@\s]+@")
# A database URL's, up to the last `@` before the next space: its password may hold `/` or `#`
# unencoded, which SQLAlchemy accepts (and masking to the last `@` errs on the safe side).
_DATABASE_URL_CREDENTIALS: Final = re.compile(r"\b(postgres(?:ql)?(?:\+psycopg)?://)\S*@")


def mask_url_credentials(text: str) -> str:
    """`text` with the credentials of each URL in it masked: `postgresql://***@db/remit`."""
    text = _DATABASE_URL_CREDENTIALS.sub(r"\1***@", text)
    return _URL_CREDENTIALS.sub("***@", text)


def mask_sensitive(text: str) -> str:
    """`text` with card numbers, secrets and URL credentials masked: what the log filter
    applies."""
    return mask_url_credentials(mask_secrets(mask_card_numbers(text)))


class SensitiveDataMaskingFilter(logging.Filter):
    """Masks card numbers and secrets in a record's message, traceback and stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_sensitive(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_sensitive(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_sensitive(record.stack_info)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def level_from_env(environ: Mapping[str, str]) -> int:
    """REMIT_LOG_LEVEL (DEBUG, INFO, WARNING, ERROR), INFO when unset or not a level."""
    level = logging.getLevelName(environ.get("REMIT_LOG_LEVEL", "INFO").strip().upper())
    return level if isinstance(level, int) else logging.INFO


def configure_logging(process: str, level: int | None = None) -> None:
    """Send every record of this process to stderr, tagged with the process name, masked;
    records from `level` up (by default REMIT_LOG_LEVEL's)."""
    if level is None:
        level = level_from_env(os.environ)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s {process} %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(SensitiveDataMaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)


# Loggers whose records below WARNING are left out of a process's log.
_NOISY: Final = ("uvicorn.access", "alembic", "pgserver")


@contextlib.contextmanager
def configuration_kept() -> Iterator[None]:
    """Put back, on leaving, whatever `configure_logging` changed inside: the root logger's
    handlers and level, and the noisy loggers' levels. For `remit.cli.main` run in a process
    that goes on after it (a test, a program embedding it): the handler it installs writes to
    the `sys.stderr` of the moment, which may be closed once it returns (pytest closes each
    test's captured stream), and every record logged afterwards would fail to write to it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in _NOISY}
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, kept in levels.items():
            logging.getLogger(name).setLevel(kept)
