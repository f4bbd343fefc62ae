"""How the vault's refusal of a payment method's new card details reaches the merchant: never
with the vault's token, and with the parameter the merchant sent."""

from datetime import UTC, datetime

from remit.core.errors import ErrorKind, RemitError
from remit.payment_methods.domain import CardSummary, PaymentMethod
from remit.payment_methods.service import _card_details_not_stored

METHOD = PaymentMethod(
    id="pm_1",
    account_id="acct_1",
    vault_token="vtok_secret",
    card=CardSummary("visa", "4242", 11, 2031, "fp", "credit", "US"),
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
)


def test_a_refused_value_names_the_merchants_parameter() -> None:
    vault = RemitError(
        message="The expiry is in the past.", kind=ErrorKind.INVALID_ARGUMENT,
        code="invalid_expiry_month", param="exp_month",
    )  # fmt: skip

    told = _card_details_not_stored(METHOD, vault)

    assert (told.kind, told.code, told.param) == (
        ErrorKind.INVALID_ARGUMENT, "invalid_expiry_month", "card[exp_month]",
    )  # fmt: skip
    assert "The expiry is in the past." in told.message


def test_a_billing_details_field_is_named_in_brackets() -> None:
    vault = RemitError(
        message="Too long.", kind=ErrorKind.INVALID_ARGUMENT,
        param="billing_details.address.line1",
    )  # fmt: skip

    assert _card_details_not_stored(METHOD, vault).param == "billing_details[address][line1]"


def test_the_vault_token_is_never_told() -> None:
    for vault in (
        RemitError(
            message="No such vault token: 'vtok_secret'",
            kind=ErrorKind.NOT_FOUND,
            code="resource_missing",
            param="vault_token",
        ),
        RemitError(
            message="vtok_secret is odd", kind=ErrorKind.INVALID_ARGUMENT, param="vault_token"
        ),
        RemitError(message="vtok_secret failed", kind=ErrorKind.DATA_LOSS, error_type="api_error"),
    ):
        told = _card_details_not_stored(METHOD, vault)
        assert "vtok_secret" not in told.message
        assert told.param is None


def test_a_retryable_failure_stays_retryable() -> None:
    vault = RemitError(
        message="An internal service is unavailable; please retry.",
        kind=ErrorKind.UNAVAILABLE, error_type="api_error", should_retry=True,
    )  # fmt: skip

    told = _card_details_not_stored(METHOD, vault)

    assert (told.kind, told.should_retry) == (ErrorKind.UNAVAILABLE, True)
