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

# What may stand between the digits of a card number as people write it, any number of them
# (`4242 4242 ...`, `4242 - 4242 ...`), as the vault accepts them.
_DIGIT_SEPARATORS: Final = " -"


def quoted_start(text: str) -> str:
    """The start of `text` to quote in a refusal: `text` itself when short, else its first
    `QUOTED_CHARS` characters and "..." (`cut_short`)."""
    return cut_short(text, QUOTED_CHARS)


def cut_short(text: str, limit: int) -> str:
    """`text` itself when at most `limit` characters, else its first `limit` characters and
    "...", less any trailing digits (and the spaces or dashes between them) that continue
    past the cut: the start of a card number cut short fails the Luhn check the masking of
    card numbers relies on, and would go out unmasked."""
    if len(text) <= limit:
        return text
    start = text[:limit]
    if _digits_continue_at(text, limit):
        while start and (start[-1].isdigit() or start[-1] in _DIGIT_SEPARATORS):
            start = start[:-1]
    return start + "..."


def abbreviated(text: str, keep: int) -> str:
    """`text` shortened to its first and last `keep` characters around "..." (Stripe's
    `Lottery Re...ne`), when longer than that. Neither end keeps digits that the cut goes
    through: the two ends of a card number cut in the middle show up to `keep` of its digits
    each, more than the first six and last four PCI DSS allows, and a cut number fails the
    Luhn check that the masking of card numbers in messages relies on."""
    if len(text) <= 2 * keep + 3:
        return text
    head, tail = text[:keep], text[-keep:]
    if _digits_continue_at(text, keep):
        while head and (head[-1].isdigit() or head[-1] in _DIGIT_SEPARATORS):
            head = head[:-1]
    if _digits_continue_before(text, len(text) - keep):
        while tail and (tail[0].isdigit() or tail[0] in _DIGIT_SEPARATORS):
            tail = tail[1:]
    return f"{head}...{tail}"


def too_long_message(text: str, limit: int, kind: str = "string") -> str:
    """Stripe's refusal of a value over `limit` characters, quoting only its start."""
    return f"Invalid {kind}: {quoted_start(text)}; must be at most {limit} characters"


def _digits_continue_before(text: str, index: int) -> bool:
    """Whether a run of digits comes up to `index` from before it: a digit just before, or
    separators there (any number, as the vault accepts a number typed) with a digit before
    them."""
    before = index - 1
    while before >= 0 and text[before] in _DIGIT_SEPARATORS:
        before -= 1
    return before >= 0 and text[before].isdigit()


def _digits_continue_at(text: str, index: int) -> bool:
    """Whether a run of digits goes on at `index`: a digit there, or separators there (any
    number) and a digit after them."""
    while index < len(text) and text[index] in _DIGIT_SEPARATORS:
        index += 1
    return index < len(text) and text[index].isdigit()
