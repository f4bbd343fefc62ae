"""Text helpers for tests."""


def full_width(text: str) -> str:
    """ASCII `text` in full-width forms (U+FF01 to U+FF5E), which IDNA maps back to ASCII."""
    return "".join(chr(ord(c) + 0xFEE0) for c in text)
