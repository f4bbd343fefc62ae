"""2023-08-16: automatic payment methods are on by default."""

from remit.versioning.change import Form, VersionChange
from remit.versioning.operations import CREATE_PAYMENT_INTENT


class DefaultToAutomaticPaymentMethods(VersionChange):
    """A PaymentIntent created with neither `automatic_payment_methods` nor
    `payment_method_types` has automatic payment methods enabled
    (`automatic_payment_methods: {"enabled": true}`). Because they may redirect the customer,
    confirming such an intent, on creation or with `/confirm`, needs a `return_url` unless
    `off_session=true` or `automatic_payment_methods[allow_redirects]` is `never`. Before
    2023-08-16 such an intent accepted cards only (`payment_method_types: ["card"]`,
    `automatic_payment_methods: null`) and needed no `return_url`.

    For the same reason `error_on_requires_action` is no longer usable with automatic payment
    methods: only with the types named (`payment_method_types`).

    Old requests are sent on naming the default they had, `payment_method_types=["card"]`; the
    intent keeps it, so confirming it later needs no `return_url` at any version, and may ask
    for `error_on_requires_action`.

    Source: https://docs.stripe.com/changelog/2023-08-16/automatic-payment-methods
    """

    resources = ("payment_intent",)
    operations = (CREATE_PAYMENT_INTENT,)
    params = ("payment_method_types", "automatic_payment_methods")

    def upgrade_request(self, operation: str, form: Form) -> None:
        if "automatic_payment_methods" not in form and "payment_method_types" not in form:
            form["payment_method_types"] = ["card"]
