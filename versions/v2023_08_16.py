"""2023-08-16: automatic payment methods are on by default."""

from typing import Final

from remit.versioning.change import Form, RequestRefusedError, VersionChange
from remit.versioning.operations import CREATE_PAYMENT_INTENT

RETURN_URL_REQUIRED_MESSAGE: Final = (
    "This PaymentIntent is configured to accept payment methods enabled in your Dashboard. "
    "Because some of these payment methods might redirect your customer off of your page, you "
    "must provide a `return_url`. If you don't want to accept redirect-based payment methods, "
    "set `automatic_payment_methods[enabled]` to `true` and "
    "`automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and "
    "Payment Intents."
)


class RequireReturnUrlToConfirm(VersionChange):
    """A PaymentIntent created without `payment_method_types` uses automatic payment methods,
    which may redirect the customer: confirming it on creation (`confirm=true`) needs a
    `return_url`, unless `off_session=true` or `automatic_payment_methods[allow_redirects]` is
    `never`. Before 2023-08-16 such an intent accepted cards only and needed no `return_url`.

    Source: https://docs.stripe.com/changelog/2023-08-16/automatic-payment-methods
    """

    resources = ("payment_intent",)
    operations = (CREATE_PAYMENT_INTENT,)
    params = (
        "confirm",
        "return_url",
        "off_session",
        "payment_method_types",
        "automatic_payment_methods.enabled",
        "automatic_payment_methods.allow_redirects",
    )

    def check_request(self, operation: str, form: Form) -> None:
        if form.get("confirm") != "true" or form.get("return_url"):
            return
        if form.get("off_session") == "true" or "payment_method_types" in form:
            return
        automatic = form.get("automatic_payment_methods")
        if isinstance(automatic, dict) and (
            automatic.get("enabled") == "false" or automatic.get("allow_redirects") == "never"
        ):
            return
        raise RequestRefusedError(
            RETURN_URL_REQUIRED_MESSAGE, code="parameter_missing", param="return_url"
        )
