"""The idempotency layer's errors in Stripe's words: `idempotency_error` for each, the endpoint
message for a key used on another endpoint, and the key as the client sent it."""

from datetime import UTC, datetime

import pytest

from remit.core.errors import RemitError
from remit.payments.idempotency import (
    KeyRecord,
    RecoveryPoint,
    idempotency_endpoint_mismatch,
    idempotency_in_use,
    idempotency_mismatch,
    relocked,
)
from remit.payments.requests import PUBLISHABLE_KEY_PREFIX, internal_key, scoped_key
from remit.rest.remit_errors import stripe_error_from_remit


def test_a_key_still_in_use_is_a_409_idempotency_error_to_retry() -> None:
    error = stripe_error_from_remit(idempotency_in_use())
    assert (error.http_status, error.type, error.code) == (
        409,
        "idempotency_error",
        "idempotency_key_in_use",
    )
    assert error.should_retry is True


def test_a_mismatch_names_the_key_the_client_sent_never_remits_prefix() -> None:
    for publishable in (False, True):
        stored = scoped_key("order-42", publishable=publishable)
        message = idempotency_mismatch(stored).message
        assert "'order-42'" in message
        assert PUBLISHABLE_KEY_PREFIX not in message
    escaped = scoped_key("remit-auto-7", publishable=False)
    assert "'remit-auto-7'" in idempotency_mismatch(escaped).message


def test_a_key_of_remits_own_is_not_named() -> None:
    message = idempotency_mismatch(internal_key("review-close")).message
    assert "remit-internal" not in message
    assert message.endswith("Try using another key if you meant to execute a different request.")


def test_a_key_used_on_another_endpoint_by_a_grpc_caller_names_the_rpcs() -> None:
    error = idempotency_endpoint_mismatch(
        scoped_key("k1", publishable=True),
        endpoint="ConfirmPaymentIntent",
        first_endpoint="CreatePaymentIntent",
    )
    assert error.error_type == "idempotency_error"
    assert error.message == (
        "Keys for idempotent requests can only be used for the same endpoint they were first "
        "used for ('ConfirmPaymentIntent' vs 'CreatePaymentIntent'). Try using a key other than "
        "'k1' if you meant to execute a different request."
    )


def test_a_key_used_on_another_path_names_the_paths_as_stripe_does() -> None:
    error = idempotency_endpoint_mismatch(
        "k1",
        endpoint="ConfirmPaymentIntent",
        first_endpoint="CreatePaymentIntent",
        path="/v1/payment_intents/pi_1/confirm",
        first_path="/v1/payment_intents",
    )
    assert error.message == (
        "Keys for idempotent requests can only be used for the same endpoint they were first "
        "used for ('/v1/payment_intents/pi_1/confirm' vs '/v1/payment_intents'). Try using a key "
        "other than 'k1' if you meant to execute a different request."
    )


def test_a_key_stored_without_a_path_is_not_named_by_its_rpc_to_a_rest_client() -> None:
    message = idempotency_endpoint_mismatch(
        "k1", endpoint="CreatePayout", first_endpoint="CreateRefund", path="/v1/payouts"
    ).message
    assert "('/v1/payouts' vs another endpoint)" in message
    assert "CreateRefund" not in message


def test_a_key_given_up_by_the_request_that_took_it_over_is_in_use_not_a_crash() -> None:
    """A request whose lease ran out finds its key's row gone at its final transaction: the
    request that took the key over failed validation and dropped it (only a key still at
    `started` is ever dropped, so nothing was done under it). Its client is told to retry,
    with a 409, not given a 500."""
    record = KeyRecord(
        account_id="acct_1", key="order-42", endpoint="CreatePaymentIntent",
        request_body=b"", recovery_point=RecoveryPoint.STARTED, response_code=None,
        response_body=None, payment_intent_id=None, charge_id=None, refund_id=None,
        request_id=None, created_at=datetime(2026, 12, 1, tzinfo=UTC), owner="o",
    )  # fmt: skip
    with pytest.raises(RemitError) as refused:
        relocked(record, None)
    assert refused.value.code == "idempotency_key_in_use"
    assert refused.value.should_retry is True
