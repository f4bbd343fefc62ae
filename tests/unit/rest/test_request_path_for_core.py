"""The URL path the facade tells the core travels in gRPC metadata, which carries printable
ASCII only: a path that is not would fail the call, a 500 the SDK retries for ever."""

from remit.rest.context import MAX_REQUEST_PATH, request_path_for_core


def test_a_plain_path_is_told_as_it_is() -> None:
    path = "/v1/payment_intents/pi_123/confirm"
    assert request_path_for_core(path) == path


def test_what_is_not_printable_ascii_is_percent_encoded_again() -> None:
    told = request_path_for_core("/v1/payouts/p\u00f3 1\x07/cancel")
    assert told == "/v1/payouts/p%C3%B3%201%07/cancel"
    assert told.isascii()
    assert told.isprintable()


def test_a_very_long_path_is_cut_short() -> None:
    told = request_path_for_core("/v1/customers/" + "c" * 10_000)
    assert len(told) == MAX_REQUEST_PATH + len("...")
    assert told.endswith("...")
