"""An over-long value is quoted by its start alone, which never holds a card number."""

import pytest

from remit.core.errors import echoed, not_found
from remit.core.text_limits import (
    QUOTED_CHARS,
    abbreviated,
    cut_short,
    quoted_start,
    too_long_message,
)
from remit.rest.context import request_path_for_core


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
        # However many separators stand where the cut goes through.
        ("Card 4242424  242424242", "Card..."),
        ("Card 424242 -- 4242424242", "Card..."),
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


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # A card number cut at either end: neither end shows any of its digits.
        ("aaaaa5555555555554444" + "z" * 30, "aaaaa..." + "z" * 20),
        ("z" * 25 + "4000056655665556bbbbb", "z" * 20 + "...bbbbb"),
        ("x" * 10 + "4242 4242 4242 4242" + "y" * 30, "x" * 10 + "..." + "y" * 20),
        ("y" * 30 + "4000-0566-5566-5556" + "x" * 5, "y" * 20 + "..." + "x" * 5),
        ("x" * 10 + "4242  4242  4242  4242" + "y" * 30, "x" * 10 + "..." + "y" * 20),
        ("y" * 30 + "4000056  655665556" + "x" * 11, "y" * 20 + "..." + "x" * 11),
        # Digits that end at the cut are whole numbers, kept as they are.
        ("9" * 20 + "x" * 1000 + "9" * 20, "9" * 20 + "..." + "9" * 20),
        # Short enough to echo whole.
        ("Lottery Results", "Lottery Results"),
    ],
)
def test_an_abbreviation_never_cuts_through_digits(text: str, shown: str) -> None:
    assert abbreviated(text, 20) == shown


def test_no_abbreviation_of_a_card_number_shows_a_run_of_more_than_its_whole() -> None:
    """Whatever surrounds a card number, what is shown of it is all of it (which the
    masking of messages then covers) or none of it."""
    number = "5555555555554444"
    for before in range(0, 45):
        for after in (0, 7, 30):
            text = "a" * before + number + "b" * after
            shown = abbreviated(text, 20)
            runs = [run for run in "".join(c if c.isdigit() else " " for c in shown).split()]
            assert all(run == number for run in runs), (before, after, shown)


def test_a_value_cut_at_any_length_never_ends_in_part_of_a_card_number() -> None:
    number = "4000056655665556"
    for before in range(0, 30):
        shown = cut_short("i" * before + number + "j" * 30, 20)
        digits = "".join(c for c in shown if c.isdigit())
        assert digits in ("", number), (before, shown)


def test_a_made_up_id_is_quoted_without_part_of_a_card_number() -> None:
    """The core's `No such ...` quotes at most 200 characters of an id."""
    made_up = "pi_" + "x" * 190 + "4000056655665556"
    message = not_found("payment_intent", made_up).message
    assert "4000" not in message
    assert "x" * 190 in message


def test_the_facade_and_the_services_cut_client_text_the_same_way() -> None:
    text = "q" * 195 + "4000056655665556"
    assert "4000" not in echoed(text)
    assert "4000" not in request_path_for_core("/v1/charges/" + "q" * 483 + "4000056655665556")
