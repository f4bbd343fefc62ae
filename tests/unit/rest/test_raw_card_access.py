"""A secret key's raw card number is refused as Stripe refuses it, with how remit grants the
account raw card access in place of Stripe's support page."""

import pytest

from remit.accounts.domain import KeyKind, Principal
from remit.rest.context import ApiContext
from remit.rest.errors import StripeError
from remit.rest.resources.cards import require_raw_card_access


def _context(key_kind: KeyKind, *, raw_card_access: bool) -> ApiContext:
    principal = Principal(
        account_id="acct_1", key_id="key_1", key_kind=key_kind, livemode=False,
        api_version=None, raw_card_access=raw_card_access,
    )  # fmt: skip
    return ApiContext(
        principal=principal, request_id="req_1", idempotency_key=None,
        api_version="2025-09-30.clover", account_api_version="2025-09-30.clover",
        params={}, path={},
    )  # fmt: skip


def test_a_secret_key_without_raw_card_access_is_told_how_remit_grants_it() -> None:
    with pytest.raises(StripeError) as caught:
        require_raw_card_access(_context(KeyKind.SECRET, raw_card_access=False))
    error = caught.value
    assert (error.http_status, error.type, error.code, error.param) == (
        400,
        "invalid_request_error",
        None,
        None,
    )
    assert error.message.startswith(
        "Sending credit card numbers directly to the Stripe API is generally unsafe."
    )
    assert error.message.endswith(
        "To send raw card data with a secret key, the account needs raw card access: create it "
        "with `remit accounts create --raw-card-access`."
    )
    assert "support.stripe.com" not in error.message
