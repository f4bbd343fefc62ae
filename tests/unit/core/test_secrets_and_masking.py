import logging
import pickle

import pytest

from remit.core.logging import CardNumberMaskingFilter, luhn_valid, mask_card_numbers
from remit.core.secrets import Secret, mask_key

PAN = "4242424242424242"


def test_a_secret_never_shows_its_value_in_str_repr_or_format() -> None:
    secret = Secret(PAN)
    for shown in (str(secret), repr(secret), f"{secret}", f"{secret!r}", f"{[secret]}"):
        assert PAN not in shown
    assert secret.reveal() == PAN


def test_a_secret_cannot_be_pickled() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Secret(PAN))


@pytest.mark.parametrize(
    "text",
    [
        f"card {PAN} declined",
        "card 4242 4242 4242 4242 declined",
        "card 4242-4242-4242-4242 declined",
        "amex 378282246310005!",
        "{'number': '5555555555554444'}",
    ],
)
def test_card_numbers_are_masked_in_any_layout(text: str) -> None:
    masked = mask_card_numbers(text)
    digits_only = "".join(ch for ch in masked if ch.isdigit())
    for pan in (PAN, "378282246310005", "5555555555554444"):
        assert pan not in digits_only
    assert "[card ****" in masked


def test_digit_runs_that_fail_luhn_or_length_are_left_alone() -> None:
    assert mask_card_numbers("order 4242424242424241 ok") == "order 4242424242424241 ok"
    assert mask_card_numbers("id 123456789012") == "id 123456789012"
    assert mask_card_numbers("ts 1700000000") == "ts 1700000000"


def test_luhn() -> None:
    assert luhn_valid(PAN)
    assert not luhn_valid("4242424242424241")


def test_the_log_filter_masks_messages_arguments_and_tracebacks() -> None:
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "charging %s", (PAN,), None)
    try:
        raise ValueError(f"bad card {PAN}")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    assert CardNumberMaskingFilter().filter(record)
    assert PAN not in record.getMessage()
    assert record.exc_text is not None
    assert PAN not in record.exc_text


def test_api_keys_are_masked_like_stripe_masks_them() -> None:
    assert mask_key("sk_test_abcdefghijkl1234") == "sk_test_********1234"
    assert mask_key("short") == "********"
