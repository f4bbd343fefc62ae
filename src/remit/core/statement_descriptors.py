"""Stripe's rules for a statement descriptor, the text a bank or card statement shows for a
payment or a payout: one place for the REST facade, which refuses a bad descriptor where it
parses a request, and for the core's services, which refuse one from every caller (an internal
gRPC caller too), so that the two can never hold a descriptor to different rules.

Every descriptor is at most 22 characters, Latin ones only (printable ASCII, and the Latin
letters beyond it), none of `< > \\ ' " *`. A payment's full descriptor (`needs_letter`) also
has at least 5 characters and one letter. A payment's suffix is concatenated with the
account's own descriptor, which holds the letter; remit keeps no such prefix, so the
concatenation's length is not checked beyond the suffix's own 22. A payout's descriptor is
held to the length and the characters alone, as Stripe holds it.

The rules apply where a descriptor is given, never where one is read: a descriptor stored
before a caller was held to them is shown as it was.
"""

import unicodedata
from dataclasses import dataclass
from typing import Final

from remit.core.errors import invalid
from remit.core.text_limits import abbreviated, too_long_message

MAX_STATEMENT_DESCRIPTOR_LENGTH: Final = 22
MIN_STATEMENT_DESCRIPTOR_LENGTH: Final = 5
# Characters card statements cannot show, or that the networks' formats give a meaning of their
# own (`*` ends a descriptor's prefix): refused by Stripe in any statement descriptor.
_FORBIDDEN: Final = frozenset("<>\\'\"*")
# How much of each end of a refused descriptor a message quotes (Stripe's `Lottery Re...ne`).
_QUOTED_ENDS: Final = 20


@dataclass(frozen=True)
class DescriptorProblem:
    """Why a descriptor is refused, in Stripe's words: its message and error code."""

    message: str
    code: str


def statement_descriptor_problem(
    text: str, param: str, *, needs_letter: bool
) -> DescriptorProblem | None:
    """What is wrong with `text` as the statement descriptor given as `param`, or None."""
    if not text:
        return DescriptorProblem(f"Invalid {param}: it may not be empty.", "parameter_invalid")
    if len(text) > MAX_STATEMENT_DESCRIPTOR_LENGTH:
        return DescriptorProblem(
            too_long_message(text, MAX_STATEMENT_DESCRIPTOR_LENGTH), "parameter_invalid"
        )
    if any(char in _FORBIDDEN for char in text):
        # The value is not echoed: it is what a statement cannot show, markup perhaps.
        return DescriptorProblem(
            f"Invalid {param}: it may not contain any of the characters < > \\ ' \" *.",
            "invalid_characters",
        )
    if not all(_is_latin(char) for char in text):
        return DescriptorProblem(
            f"Invalid {param}: it may contain only Latin characters (letters, digits, "
            "spaces and punctuation), no control characters.",
            "invalid_characters",
        )
    if not needs_letter:
        return None
    if len(text) < MIN_STATEMENT_DESCRIPTOR_LENGTH:
        return DescriptorProblem(
            f"Invalid {param}: {abbreviated(text, _QUOTED_ENDS)} must be at least "
            f"{MIN_STATEMENT_DESCRIPTOR_LENGTH} characters.",
            "parameter_invalid",
        )
    if not any(char.isalpha() for char in text):
        return DescriptorProblem(
            f"Invalid {param}: {abbreviated(text, _QUOTED_ENDS)} must contain at least one letter.",
            "parameter_invalid",
        )
    return None


def refuse_invalid_statement_descriptor(
    text: str | None, param: str, *, needs_letter: bool
) -> None:
    """Refuse `text`, given as `param`, unless it follows the rules; None (not given) passes."""
    if text is None:
        return
    problem = statement_descriptor_problem(text, param, needs_letter=needs_letter)
    if problem is not None:
        raise invalid(problem.message, param, code=problem.code)


def refuse_invalid_payment_descriptors(
    statement_descriptor: str | None, statement_descriptor_suffix: str | None
) -> None:
    """Refuse the descriptors a payment is given (on create, update or capture), the full one
    needing a letter, the suffix not; None (not given, or cleared) passes."""
    refuse_invalid_statement_descriptor(
        statement_descriptor, "statement_descriptor", needs_letter=True
    )
    refuse_invalid_statement_descriptor(
        statement_descriptor_suffix, "statement_descriptor_suffix", needs_letter=False
    )


def _is_latin(char: str) -> bool:
    """Printable ASCII, or a letter of the Latin script beyond it (`é`, `ß`)."""
    if " " <= char <= "~":
        return True
    return char.isalpha() and unicodedata.name(char, "").startswith("LATIN ")
