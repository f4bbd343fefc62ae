"""Process-wide logging with a filter that masks anything that looks like a card number.

Card numbers must never reach a log line, whatever code wrote it: the filter rewrites every
record's final message, masking each 13-19 digit run (spaces or dashes allowed between digits)
that passes the Luhn check, keeping only the last four digits.
"""

import logging
import re
import sys
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


class CardNumberMaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_card_numbers(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_card_numbers(record.exc_text)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure_logging(process: str, level: int = logging.INFO) -> None:
    """Send every record of this process to stderr, tagged with the process name, masked."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s {process} %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(CardNumberMaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access", "alembic", "pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
