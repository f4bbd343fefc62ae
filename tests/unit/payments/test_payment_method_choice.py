"""Which payment method types an intent may use, and when confirming it needs a return_url."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from remit.core.errors import RemitError
from remit.payments.domain import (
    CaptureMethod,
    ConfirmationMethod,
    ConfirmationStarted,
    PaymentIntent,
    Status,
    Updated,
    require_a_usable_payment_method_type,
    require_return_url,
    transition,
    usable_payment_method_types,
)

T = datetime(2026, 11, 1, tzinfo=UTC)
INTENT = PaymentIntent(
    id="pi_1",
    account_id="acct_1",
    amount_minor=1000,
    currency="usd",
    status=Status.REQUIRES_PAYMENT_METHOD,
    capture_method=CaptureMethod.AUTOMATIC,
    confirmation_method=ConfirmationMethod.AUTOMATIC,
    client_secret="pi_1_secret_x",
    created_at=T,
    updated_at=T,
)
AUTOMATIC = {"enabled": True}


@pytest.mark.parametrize(
    ("allowed", "excluded", "usable"),
    [
        (None, None, ["card"]),
        (("card",), None, ["card"]),
        # Types remit cannot process are left out, as Stripe leaves out incompatible ones.
        (("ideal", "card"), None, ["card"]),
        (None, ("ideal",), ["card"]),
        (("ideal",), None, []),
        (None, ("card",), []),
    ],
)
def test_the_usable_types_are_the_processable_ones_allowed_and_not_excluded(
    allowed: tuple[str, ...] | None, excluded: tuple[str, ...] | None, usable: list[str]
) -> None:
    intent = replace(
        INTENT, allowed_payment_method_types=allowed, excluded_payment_method_types=excluded
    )
    assert usable_payment_method_types(intent) == usable


def test_allowing_only_types_remit_cannot_process_is_refused_on_the_allowed_list() -> None:
    intent = replace(INTENT, allowed_payment_method_types=("ideal", "sepa_debit"))
    with pytest.raises(RemitError) as refused:
        require_a_usable_payment_method_type(intent)
    assert (refused.value.code, refused.value.param) == (
        "parameter_invalid",
        "allowed_payment_method_types",
    )
    assert "ideal, sepa_debit" in refused.value.message


def test_excluding_cards_is_refused_on_the_excluded_list() -> None:
    intent = replace(INTENT, excluded_payment_method_types=("card",))
    with pytest.raises(RemitError) as refused:
        require_a_usable_payment_method_type(intent)
    assert refused.value.param == "excluded_payment_method_types"


def test_an_update_that_leaves_no_usable_type_is_refused() -> None:
    allowed_cards = replace(INTENT, allowed_payment_method_types=("card",))
    with pytest.raises(RemitError) as refused:
        transition(
            allowed_cards, Updated(at=T, changes={"excluded_payment_method_types": ("card",)})
        )
    assert refused.value.param == "excluded_payment_method_types"


def test_a_confirmation_replaces_the_lists_it_gives_and_keeps_the_others() -> None:
    intent = replace(
        INTENT,
        allowed_payment_method_types=("card", "ideal"),
        excluded_payment_method_types=("ideal",),
    )
    confirmed = transition(
        intent,
        ConfirmationStarted(
            at=T, payment_method_id="pm_1", charge_id="ch_1", allowed_payment_method_types=("card",)
        ),
    )
    assert confirmed.allowed_payment_method_types == ("card",)
    assert confirmed.excluded_payment_method_types == ("ideal",)


@pytest.mark.parametrize(
    "automatic",
    [{"enabled": True}, {"enabled": True, "allow_redirects": "always"}],
)
def test_confirming_automatic_payment_methods_that_may_redirect_needs_a_return_url(
    automatic: dict[str, object],
) -> None:
    intent = replace(INTENT, automatic_payment_methods=automatic)
    with pytest.raises(RemitError) as refused:
        require_return_url(intent, return_url=None, off_session=False)
    assert (refused.value.code, refused.value.param) == ("parameter_missing", "return_url")


@pytest.mark.parametrize(
    ("automatic", "return_url", "kept_url", "off_session"),
    [
        (AUTOMATIC, "https://shop.test/back", None, False),
        (AUTOMATIC, None, "https://shop.test/kept", False),
        (AUTOMATIC, None, None, True),
        ({"enabled": True, "allow_redirects": "never"}, None, None, False),
        ({"enabled": False}, None, None, False),
        (None, None, None, False),
    ],
)
def test_a_return_url_is_not_needed_when_the_customer_cannot_be_sent_away(
    automatic: dict[str, object] | None,
    return_url: str | None,
    kept_url: str | None,
    off_session: bool,
) -> None:
    intent = replace(INTENT, automatic_payment_methods=automatic, return_url=kept_url)
    require_return_url(intent, return_url=return_url, off_session=off_session)
