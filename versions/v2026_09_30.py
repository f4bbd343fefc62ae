"""2026-09-30.endive: `payment_method_types` becomes read-only on PaymentIntents."""

from remit.versioning.change import Form, RequestRefusedError, VersionChange
from remit.versioning.operations import (
    CONFIRM_PAYMENT_INTENT,
    CREATE_PAYMENT_INTENT,
    UPDATE_PAYMENT_INTENT,
)


class RefuseWritablePaymentMethodTypes(VersionChange):
    """`payment_method_types` can no longer be written when creating, updating or confirming a
    PaymentIntent: passing it answers 400 `payment_method_types_no_longer_supported`. It stays
    a read-only property; use `allowed_payment_method_types` or `excluded_payment_method_types`.
    Older versions may still write it.

    Source: https://docs.stripe.com/changelog/endive/2026-09-30/removes-the-payment-method-types-parameter-from-payment-intents-and-setup-intents
    """

    resources = ("payment_intent",)
    fields = ("payment_method_types", "allowed_payment_method_types")
    operations = (CREATE_PAYMENT_INTENT, CONFIRM_PAYMENT_INTENT, UPDATE_PAYMENT_INTENT)
    params = ("payment_method_types",)
    refused_params = ("payment_method_types",)

    def check_request(self, operation: str, form: Form) -> None:
        if "payment_method_types" in form:
            raise RequestRefusedError(
                "The `payment_method_types` parameter is no longer supported as of API version "
                "2026-09-30.endive. Use `allowed_payment_method_types` or "
                "`excluded_payment_method_types` instead.",
                code="payment_method_types_no_longer_supported",
                param="payment_method_types",
            )
