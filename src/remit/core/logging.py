"""Process-wide logging with a filter that masks card numbers and secrets.

Card numbers must never reach a log line, whatever code wrote it: the filter rewrites every
record's final message, its traceback and its stack, masking each run of digits (any spaces or
dashes between them, as the vault accepts a number typed) that holds a card number, keeping
only that number's last four digits (`mask_card_numbers`).
Secrets that would let a reader act as someone are masked too: secret and restricted API keys
(`sk_live_`, `sk_test_`, `rk_...`), webhook signing secrets (`whsec_`), PaymentIntent client
secrets (`pi_..._secret_...`, whose intent id stays readable) and the user and password of a
connection URL (`postgresql://***@host/db`), which a database driver's error may quote.
Publishable keys are public and stay as they are.
"""

import contextlib
import itertools
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Final

_CARD_LENGTHS: Final = range(13, 20)
# Digits with any spaces or dashes between them, as `vault.cards.normalize_number` accepts a
# number typed; ASCII digits only, as the vault takes no others. The lookahead passes over the
# runs too short to hold a card (most numbers in a log line) without a call for each. Digits
# and separators never overlap, so matching takes time linear in the run, however long.
_DIGIT_RUN: Final = re.compile(r"(?<![0-9])(?=[0-9][0-9 -]{12})[0-9]+(?:[ -]+[0-9]+)*")
# The lengths a card number has, by its first digit (`vault.cards.BRAND_RULES`, coarsened): 2
# and 5 Mastercard, 3 Amex, Diners and JCB, 4 Visa, 6 Discover and UnionPay, 8 UnionPay.
_LENGTHS_BY_FIRST_DIGIT: Final = {
    "2": (16,),
    "3": (14, 15, 16, 17, 18, 19),
    "4": (13, 16, 19),
    "5": (16,),
    "6": (16, 17, 18, 19),
    "8": (16, 17, 18, 19),
}
_NO_LENGTHS: Final[tuple[int, ...]] = ()
_LUHN_DOUBLED: Final = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


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
    """`text` with each run of digits that holds a card number (see `_card_number_in`)
    replaced, whole, by `[card ****4242]`: what else the run holds (a CVC, an expiry typed
    after the number) goes with it."""

    def replace(match: re.Match[str]) -> str:
        run = match.group(0)
        if len(run) < _CARD_LENGTHS.start:
            return run
        number = _card_number_in(run)
        return run if number is None else f"[card ****{number[-4:]}]"

    return _DIGIT_RUN.sub(replace, text)


def _card_number_in(run: str) -> str | None:
    """A card number within `run` (digits, spaces and dashes), or None: 13-19 digits that pass
    the Luhn check and are either whole groups of the run (`4242 4242 4242 4242 123`, a number
    and its CVC) or start a group and go on into one, at a length a card starting so has
    (`42424242424242421234`, the CVC typed on). Not every stretch of digits is tried: the
    more are, the more long numbers (ids, timestamps) would pass by chance, one in ten each."""
    groups = run.replace("-", " ").split()
    digits = "".join(groups)
    if len(digits) < _CARD_LENGTHS.start:
        return None
    starts = list(itertools.accumulate((len(group) for group in groups[:-1]), initial=0))
    ends = set(itertools.accumulate(len(group) for group in groups))
    # No stretch tried goes further than 19 digits past a group's start.
    passes_luhn = _luhn_check_of_stretches(digits[: starts[-1] + _CARD_LENGTHS.stop - 1])
    # Whole groups first, so that the number shown is the one typed, not a stretch of it
    # that passes by chance.
    for start in starts:
        for end in range(start + _CARD_LENGTHS.start, start + _CARD_LENGTHS.stop):
            if end in ends and passes_luhn(start, end):
                return digits[start:end]
    for start in starts:
        for length in _LENGTHS_BY_FIRST_DIGIT.get(digits[start], _NO_LENGTHS):
            end = start + length
            if end <= len(digits) and end not in ends and passes_luhn(start, end):
                return digits[start:end]
    return None


def _luhn_check_of_stretches(digits: str) -> Callable[[int, int], bool]:
    """Whether the stretch `digits[start:end]` passes the Luhn check, in constant time, from
    prefix sums: which digits a stretch doubles (every other one, leftwards from its
    next-to-last) depends only on the parity of where it ends, so one sum for each parity
    serves every stretch."""
    values = [ord(char) - 48 for char in digits]
    doubled = [_LUHN_DOUBLED[value] for value in values]
    # A stretch ending before an even index (its last digit at an odd one) doubles the digits
    # at even indexes, and one ending before an odd index those at odd indexes.
    doubling_even = [values[i] if i % 2 else doubled[i] for i in range(len(values))]
    doubling_odd = [doubled[i] if i % 2 else values[i] for i in range(len(values))]
    by_parity = (
        [0, *itertools.accumulate(doubling_even)],
        [0, *itertools.accumulate(doubling_odd)],
    )

    def passes(start: int, end: int) -> bool:
        sums = by_parity[end % 2]
        return (sums[end] - sums[start]) % 10 == 0

    return passes


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


def install_masked_excepthook() -> None:
    """Print an exception nothing caught (in the main thread or another) masked as the log
    is: Python's own hooks write its traceback, whose message and locals' reprs may quote a
    card number or a secret, straight to stderr, past the log's filter."""
    import threading

    def masked_excepthook(
        kind: type[BaseException], error: BaseException, trace: TracebackType | None
    ) -> None:
        _write_masked(traceback.format_exception(kind, error, trace))

    def masked_thread_excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return  # as Python's own hook: a thread's SystemExit is no failure
        name = args.thread.name if args.thread is not None else "a thread"
        lines = traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)
        _write_masked([f"Exception in thread {name}:\n", *lines])

    sys.excepthook = masked_excepthook
    threading.excepthook = masked_thread_excepthook


def _write_masked(lines: list[str]) -> None:
    stream = sys.stderr
    if stream is None:  # (no stderr at all: nothing to write to)
        return
    stream.write(mask_sensitive("".join(lines)))
    stream.flush()


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
