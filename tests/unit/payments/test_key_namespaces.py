"""A caller's idempotency key is stored where none of remit's own keys can be, and events show
the caller the key it sent, never one remit made up."""

import pytest

from remit.payments.requests import (
    AUTO_KEY_PREFIX,
    client_key_of,
    current_request,
    internal_key,
    note_request,
    scoped_key,
)


@pytest.mark.parametrize(
    "client_key",
    [
        "order-1",
        "review_rev_1",
        "remit-internal/review_rev_1",
        "remit-auto-req_1",
        "remit-publishable/order-1",
        "remit-client/order-1",
        "remit-order-1",
    ],
)
@pytest.mark.parametrize("publishable", [False, True])
def test_no_caller_key_lands_on_one_of_remits_own(client_key: str, publishable: bool) -> None:
    stored = scoped_key(client_key, publishable=publishable)

    assert stored != internal_key("review_rev_1")
    assert not stored.startswith(("remit-internal/", AUTO_KEY_PREFIX))
    assert stored != scoped_key(client_key, publishable=not publishable)
    assert client_key_of(stored) == client_key


def test_a_secret_key_callers_ordinary_key_is_stored_as_it_is() -> None:
    # Keys stored before keep their meaning: a retry finds them.
    assert scoped_key("order-1", publishable=False) == "order-1"
    assert scoped_key("review_rev_1", publishable=False) == "review_rev_1"
    # Even one that begins like remit's own, unless it begins exactly so: a retry across an
    # upgrade must find the key its first try stored, or it would pay a second time.
    assert scoped_key("remit-order-42", publishable=False) == "remit-order-42"


def test_events_name_no_key_that_remit_made_up() -> None:
    note_request("req_1", internal_key("review_rev_1"))
    request = current_request.get()
    assert request is not None
    assert request.idempotency_key is None
    note_request("req_2", scoped_key("remit-internal/x", publishable=False))
    request = current_request.get()
    assert request is not None
    assert request.idempotency_key == "remit-internal/x"
