"""What a caller names for an audit record to keep as told (an operator, a reason): refused when
it holds a character that could make one record print as several, and quoted where printed.

A control character or a line separator in an operator or a reason would let one recorded event
print as several lines of an audit listing (a forged event), or send the terminal showing it
commands; whatever the caller meant by it, it is no part of a name or a reason.
"""

import json
import unicodedata
from typing import Final

# Besides control characters (Unicode category Cc: line feed, carriage return, escape, NEL...),
# the characters that break a line where they are printed.
_LINE_SEPARATORS: Final = frozenset({"\u2028", "\u2029"})


def unprintable_character(text: str) -> str | None:
    """The first character of `text` an operator or reason may not hold, as `U+XXXX`, or None."""
    for char in text:
        if char in _LINE_SEPARATORS or unicodedata.category(char) == "Cc":
            return f"U+{ord(char):04X}"
    return None


def quoted_told(told: str) -> str:
    """`told` (what a caller named: an operator, a reason) in double quotes, with its quotes,
    control characters and line separators escaped, so that a line break in it cannot pass for
    another record, nor an escape sequence act on the terminal. The services refuse such
    characters now, but a record written before they did keeps them for good."""
    # JSON escapes quotes, backslashes and C0 controls; the rest are escaped as JSON would.
    quoted = json.dumps(told, ensure_ascii=False)
    return "".join(f"\\u{ord(c):04x}" if unprintable_character(c) else c for c in quoted)
