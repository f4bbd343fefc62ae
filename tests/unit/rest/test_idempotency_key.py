"""Which Idempotency-Key headers the facade forwards to the core, refuses, or drops."""

import pytest

from remit.rest.errors import StripeError
from remit.rest.idempotency import (
    checked_idempotency_key,
    idempotency_key_problem,
    well_formed_idempotency_key,
)


@pytest.mark.parametrize(
    "key", ["6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b", "order 42/retry#1", "~!@$%^&*()", "x" * 255]
)
def test_a_printable_ascii_key_of_at_most_255_characters_is_forwarded(key: str) -> None:
    assert idempotency_key_problem(key) is None
    assert checked_idempotency_key("POST", key) == key


def test_no_key_forwards_nothing() -> None:
    assert checked_idempotency_key("POST", None) is None
    assert checked_idempotency_key("POST", "") is None


@pytest.mark.parametrize("key", ["caf\u00e9", "\u20ac", "tab\there", "bell\x07", "del\x7f"])
def test_a_key_with_a_character_outside_printable_ascii_is_a_400_naming_the_header(
    key: str,
) -> None:
    with pytest.raises(StripeError) as raised:
        checked_idempotency_key("POST", key)
    error = raised.value
    assert (error.http_status, error.type) == (400, "invalid_request_error")
    assert "Idempotency-Key" in error.message
    assert key not in error.message


def test_a_key_longer_than_255_characters_is_a_400_naming_the_header() -> None:
    with pytest.raises(StripeError) as raised:
        checked_idempotency_key("POST", "x" * 256)
    assert raised.value.http_status == 400
    assert "Idempotency-Key" in raised.value.message
    assert "255" in raised.value.message


@pytest.mark.parametrize("method", ["GET", "DELETE", "get"])
@pytest.mark.parametrize("key", ["caf\u00e9", "x" * 256])
def test_a_malformed_key_on_a_get_or_delete_is_dropped_not_refused(method: str, key: str) -> None:
    assert checked_idempotency_key(method, key) is None


def test_a_well_formed_key_on_a_get_is_forwarded_as_before() -> None:
    assert checked_idempotency_key("GET", "k-1") == "k-1"


@pytest.mark.parametrize("key", [None, "", "caf\u00e9", "x" * 256])
def test_a_key_that_may_not_be_echoed_reads_as_none_without_a_refusal(key: str | None) -> None:
    assert well_formed_idempotency_key(key) is None


def test_a_well_formed_key_reads_as_itself() -> None:
    assert well_formed_idempotency_key("order-6735") == "order-6735"
