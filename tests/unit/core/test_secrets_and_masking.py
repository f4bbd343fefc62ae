import io
import logging
import pickle
from collections.abc import Iterator

import pytest

from remit.core.logging import (
    SensitiveDataMaskingFilter,
    configure_logging,
    luhn_valid,
    mask_card_numbers,
    mask_secrets,
    mask_url_credentials,
)
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


@pytest.mark.parametrize(
    ("typed", "last4"),
    [
        # A number with what was typed after it, separated: its CVC, part of an expiry.
        ("4242424242424242 123", "4242"),
        ("5555555555554444-12", "4444"),
        ("378282246310005 1234", "0005"),
        ("4242 4242 4242 4242 123", "4242"),
        # ... or before it.
        ("12 4242424242424242", "4242"),
        # Any number of spaces and dashes between groups, as the vault accepts them.
        ("4242  4242  4242  4242", "4242"),
        ("4242 - 4242 - 4242 - 4242", "4242"),
        ("4242--4242 -4242- 4242", "4242"),
        # The CVC typed on with no space: the number is where a card of its brand ends.
        ("42424242424242421234", "4242"),
        ("4242424242424242123", "4242"),
        ("55555555555544441234", "4444"),
        ("3782822463100051234", "0005"),
        ("4242 4242 4242 42421234", "4242"),
    ],
)
def test_a_card_number_in_a_longer_run_of_digits_is_masked_with_the_whole_run(
    typed: str, last4: str
) -> None:
    """The whole run goes, so that the CVC or expiry typed with the number goes with it."""
    assert mask_card_numbers(f"Invalid integer: {typed}.") == (
        f"Invalid integer: [card ****{last4}]."
    )


@pytest.mark.parametrize(
    "text",
    [
        "amount 1000 at 2026 12 07",
        "pi_123 1234567890",
        "2026-12-07 16:02:41,123 core INFO charged 1000 usd (attempt 2 of 5)",
        "created 2026-12-07T16:02:41.123456Z by 10.0.0.12:5432",
        "took 1765123456782 ms",  # a 13-digit millisecond timestamp that fails the Luhn check
        "at 1765123456789012345 ns",  # a 19-digit one: none of its stretches is a card's
        "id 12345678901234567890",  # longer than any card, and starts as none does
        "amounts 100 200 300 400 500",
    ],
)
def test_ids_timestamps_and_amounts_are_left_alone(text: str) -> None:
    assert mask_card_numbers(text) == text


def test_a_long_run_of_digits_and_separators_is_masked_whole_when_it_holds_a_card() -> None:
    filler = "1 " * 50_000
    assert mask_card_numbers(filler) == filler  # no stretch of ones passes the Luhn check
    assert mask_card_numbers(f"{filler}4242424242424242 {filler}x") == "[card ****4242] x"


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
    assert SensitiveDataMaskingFilter().filter(record)
    assert PAN not in record.getMessage()
    assert record.exc_text is not None
    assert PAN not in record.exc_text


def test_the_log_filter_masks_a_card_number_typed_with_its_cvc() -> None:
    record = logging.LogRecord(
        "t", logging.ERROR, __file__, 1, "refused %r", ("4242 4242 4242 4242 123",), None
    )
    try:
        raise ValueError("Invalid integer: 4242424242424242 123")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    assert SensitiveDataMaskingFilter().filter(record)
    assert record.getMessage() == "refused '[card ****4242]'"
    assert record.exc_text is not None
    assert "ValueError: Invalid integer: [card ****4242]" in record.exc_text
    assert "123" not in record.exc_text.splitlines()[-1]


def test_api_keys_are_masked_like_stripe_masks_them() -> None:
    assert mask_key("sk_test_abcdefghijkl1234") == "sk_test_********1234"
    assert mask_key("short") == "********"


SECRETS = (
    "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
    "sk_live_51HabcdefGHIJKLMNOPqrstuv",
    "rk_live_51HabcdefGHIJKLMNOPqrstuv",
    "whsec_5Jf0rXq9bC2dE7gH1iJ3kL4mN6oP8qR0",
    "pi_3NfAbCdEf_secret_Zx9Yw8Vu7Ts6",
)
PUBLISHABLE = "pk_test_TYooMQauvdEDq54NiTphI7jx"


@pytest.fixture
def written() -> Iterator[io.StringIO]:
    """What the handler `configure_logging` installs writes (here, instead of stderr); the
    root logger's handlers and level are put back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("test")
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_secrets_never_reach_the_log_but_publishable_keys_do(written: io.StringIO) -> None:
    process_log = logging.getLogger("remit.test")
    for secret in SECRETS:
        process_log.warning("calling with %s and %s", secret, PUBLISHABLE)
        process_log.warning(f"inline {secret}")
        try:
            raise ValueError(f"refused {secret}")
        except ValueError:
            process_log.exception("failed")
        record = logging.LogRecord(
            "remit.test", logging.WARNING, __file__, 1, "with its stack", None, None
        )
        record.stack_info = f'Stack (most recent call last):\n  pay(key="{secret}")'
        process_log.handle(record)
    text = written.getvalue()
    for secret in SECRETS:
        assert secret not in text
        assert secret[-12:] not in text
    assert PUBLISHABLE in text
    assert "sk_test_********p7dc" in text  # the last four, as Stripe shows a key
    assert "whsec_********" in text
    assert "pi_3NfAbCdEf_secret_********" in text
    assert 'pay(key="rk_live_********stuv")' in text


def test_the_masks_leave_ordinary_text_alone() -> None:
    text = "pi_3NfAbCdEf succeeded for cus_123; task_secret_sauce and desk_test_1 are not keys"
    assert mask_secrets(text) == text


def test_database_passwords_never_reach_the_log(written: io.StringIO) -> None:
    """A driver's error may quote the URL it connected with; a command's traceback at DEBUG
    level (`remit.command_exits`) then goes to stderr through this filter."""
    url = "postgresql://remit:s3cret-pw@db.internal:5432/remit"
    process_log = logging.getLogger("remit.test")
    process_log.warning("connecting to %s", url)
    try:
        raise ConnectionError(f"could not connect to {url}")
    except ConnectionError:
        process_log.exception("failed")
    text = written.getvalue()
    assert "s3cret-pw" not in text
    # The message, and the exception's line of the traceback.
    assert text.count("postgresql://***@db.internal:5432/remit") == 2
    assert mask_url_credentials("see https://example.com/path@x") == (
        "see https://example.com/path@x"
    )


@pytest.mark.parametrize(
    "password", ["ab/cd+ef==", "p#ss", "x?y=z", "semi;colon", "at@sign", "plain"]
)
def test_a_database_urls_password_is_masked_whatever_it_holds(password: str) -> None:
    for scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        masked = mask_url_credentials(f"failed: {scheme}://remit:{password}@db:5432/remit (x)")
        assert masked == f"failed: {scheme}://***@db:5432/remit (x)"
