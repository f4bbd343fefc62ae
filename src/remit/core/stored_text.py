"""Text that came from outside and is stored as it came (what a webhook endpoint answered).

PostgreSQL's text holds any Unicode character but NUL, and the driver refuses a string holding
one (or a lone surrogate, which has no UTF-8) before it is sent: a write of such text fails its
whole transaction. Text that only needs to be shown keeps its other characters, and each one
that cannot be stored reads as the replacement character, as undecodable bytes already do.
"""

from typing import Final

REPLACEMENT: Final = "\ufffd"


def storable_text(text: str) -> str:
    """`text` with every NUL and lone surrogate replaced by U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", REPLACEMENT)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join(REPLACEMENT if "\ud800" <= char <= "\udfff" else char for char in text)
    return text
