"""An over-long value is quoted by its start alone, which never holds a card number."""

import pytest

from remit.core.text_limits import QUOTED_CHARS, quoted_start, too_long_message


def test_a_short_value_is_quoted_whole_and_a_long_one_by_its_start() -> None:
    assert quoted_start("Tea & cake") == "Tea & cake"
    assert quoted_start("x" * QUOTED_CHARS) == "x" * QUOTED_CHARS
    assert quoted_start("Lottery Results for the 2024 waiting line") == "Lottery Resu..."


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        # The cut goes through a run of digits: the run is left out, whatever separates them.
        ("4242424242424242" + "x" * 40, "..."),
        ("Card 4242 4242 4242 4242, thanks", "Card..."),
        ("Card: 4242-4242-4242-4242", "Card:..."),
        ("Order 12345 6789 and more", "Order..."),
        # Digits that end before the cut are a whole number, shorter than any card's.
        ("Order 12345, with thanks", "Order 12345,..."),
    ],
)
def test_a_run_of_digits_cut_short_is_never_quoted(text: str, quoted: str) -> None:
    assert quoted_start(text) == quoted


def test_the_refusal_reads_as_stripes() -> None:
    assert too_long_message("abcdefghijklmnop", 5) == (
        "Invalid string: abcdefghijkl...; must be at most 5 characters"
    )
