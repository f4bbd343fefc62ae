"""How a text value longer than its limit is refused: one wording for the REST facade and the
gRPC services, Stripe's (`Invalid string: abc...; must be at most 5000 characters`).

The refusal quotes the value by its first few characters only: enough for a caller to tell
which value it was, too few to hold a card number (13 digits at least), and never ending in a
run of digits that the cut goes through, which could be the start of one. Quoting more of a
value whose only fault is its length helps no one, and a refusal travels back in a header
(gRPC trailers) that a long quote could outgrow.
"""

from typing import Final

QUOTED_CHARS: Final = 12
"""The most characters of an over-long value a refusal quotes: fewer than any card number."""

# What may stand between the digits of a card number as people write it: `4242 4242 ...`.
_DIGIT_SEPARATORS: Final = " -"


def quoted_start(text: str) -> str:
    """The start of `text` to quote in a refusal: `text` itself when short, else its first
    `QUOTED_CHARS` characters and "...", less any trailing digits (and the spaces or dashes
    between them) that continue past the cut."""
    if len(text) <= QUOTED_CHARS:
        return text
    start = text[:QUOTED_CHARS]
    if _digits_continue_at(text, QUOTED_CHARS):
        while start and (start[-1].isdigit() or start[-1] in _DIGIT_SEPARATORS):
            start = start[:-1]
    return start + "..."


def too_long_message(text: str, limit: int, kind: str = "string") -> str:
    """Stripe's refusal of a value over `limit` characters, quoting only its start."""
    return f"Invalid {kind}: {quoted_start(text)}; must be at most {limit} characters"


def _digits_continue_at(text: str, index: int) -> bool:
    """Whether a run of digits goes on at `index`: a digit there, or a separator there and a
    digit after it."""
    here = text[index]
    if here.isdigit():
        return True
    return here in _DIGIT_SEPARATORS and index + 1 < len(text) and text[index + 1].isdigit()
