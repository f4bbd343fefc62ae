"""What a confirmation needs when automatic payment methods are on (Stripe's default since
2023-08-16), and what only a confirmation may be given, shared by the core, which applies it to
the intent it confirms, and the REST facade, which applies it to a create before it stores a card
given with it at the vault."""

from collections.abc import Collection
from typing import Final

from remit.core.errors import RemitError, invalid

RETURN_URL_REQUIRED_MESSAGE: Final = (
    "This PaymentIntent is configured to accept payment methods enabled in your Dashboard. "
    "Because some of these payment methods might redirect your customer off of your page, you "
    "must provide a `return_url`. If you don't want to accept redirect-based payment methods, "
    "set `automatic_payment_methods[enabled]` to `true` and "
    "`automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and "
    "Payment Intents."
)

ERROR_ON_REQUIRES_ACTION_MESSAGE: Final = (
    "error_on_requires_action cannot be used with automatic payment methods "
    "(`automatic_payment_methods[enabled]=true`, the default since 2023-08-16). To use it, "
    "turn them off (`automatic_payment_methods[enabled]=false`) or name the payment method "
    "types (`payment_method_types`)."
)


def may_redirect(*, automatic: bool, allow_redirects: str | None) -> bool:
    """Whether confirming may send the customer away: automatic payment methods are on and
    redirect-based ones are not ruled out (`allow_redirects` defaults to `always`)."""
    return automatic and allow_redirects != "never"


def require_return_url(
    *, redirects: bool, return_url: str | None, kept_return_url: str | None, off_session: bool
) -> None:
    """A confirmation that may redirect the customer needs somewhere to send them back to
    (its own `return_url`, or one the intent kept); an off-session payment has no customer to
    redirect."""
    if off_session or return_url or kept_return_url or not redirects:
        return
    raise RemitError(
        message=RETURN_URL_REQUIRED_MESSAGE, code="parameter_missing", param="return_url"
    )


def refuse_error_on_requires_action(*, automatic: bool, error_on_requires_action: bool) -> None:
    """From 2023-08-16 `error_on_requires_action` is usable only with the payment method types
    named (`payment_method_types`), not with automatic payment methods
    (https://docs.stripe.com/changelog/2023-08-16/automatic-payment-methods). Older versions
    name `card` for an intent that names nothing (their version change), so they keep it."""
    if error_on_requires_action and automatic:
        raise invalid(ERROR_ON_REQUIRES_ACTION_MESSAGE, "error_on_requires_action")


# A create's parameters that describe its confirmation: Stripe's spec gives each "This parameter
# can only be used with `confirm=true`" (mandate and mandate_data too, which remit does not take).
CONFIRM_ONLY_PARAMS: Final = ("error_on_requires_action", "off_session", "return_url")


def refuse_confirm_only_params(*, confirm: bool, given: Collection[str]) -> None:
    """A create not confirmed at once may not ask for what only its confirmation would do
    (`given`: the names of CONFIRM_ONLY_PARAMS the request sets to something, a flag to true).
    Accepted, `off_session` and `error_on_requires_action` were dropped (the payment confirmed
    later as an on-session one), and `return_url` kept for a later confirmation, which Stripe
    refuses."""
    if confirm:
        return
    for name in CONFIRM_ONLY_PARAMS:
        if name in given:
            raise invalid(f"The parameter {name} can only be used with confirm=true.", name)
