"""2025-03-31.basil: invoices can have several partial payments, and releasing an uncaptured
amount is no longer a refund."""

from remit.core.jsonview import JsonObject, JsonValue
from remit.versioning.change import RenderContext, VersionChange
from remit.versioning.schema_edit import properties, set_property


class RemoveInvoiceFromPaymentIntentsAndCharges(VersionChange):
    """PaymentIntent and Charge no longer have `invoice` (an invoice may now be paid by several
    payments). remit has no invoices, so older versions see `invoice: null`.

    Source: https://docs.stripe.com/changelog/basil/2025-03-31/add-support-for-multiple-partial-payments-on-invoices
    """

    resources = ("payment_intent", "charge")
    adds_back = ("invoice",)

    def downgrade(self, obj: JsonObject, context: RenderContext) -> None:
        if "id" in obj:
            obj["invoice"] = None

    def downgrade_schema(self, schemas: dict[str, JsonObject]) -> None:
        for resource in self.resources:
            set_property(schemas, resource, "invoice", {"type": "null"})


class RenameExpiredCancellationReason(VersionChange):
    """A PaymentIntent canceled because its authorization expired uncaptured has
    `cancellation_reason: "expired"`; before 2025-03-31 it was `"automatic"`.

    Source: https://docs.stripe.com/changelog/basil/2025-03-31/remove-refund-from-partial-capture-and-payment-cancellation-flow
    """

    resources = ("payment_intent",)
    fields = ("cancellation_reason",)

    def downgrade(self, obj: JsonObject, context: RenderContext) -> None:
        if obj.get("cancellation_reason") == "expired":
            obj["cancellation_reason"] = "automatic"

    def downgrade_schema(self, schemas: dict[str, JsonObject]) -> None:
        _drop_enum_value(properties(schemas, "payment_intent")["cancellation_reason"], "expired")


class RenderReleasedAmountsAsRefunded(VersionChange):
    """Releasing an uncaptured amount (the remainder of a partial capture, or a whole
    authorization when its PaymentIntent is canceled or expires) is not a refund: the Charge's
    `amount_refunded` counts refunds only, and `refunded` stays false. Before 2025-03-31 the
    released amount was counted in `amount_refunded`, and `refunded` was true once nothing of
    the charge's amount remained.

    Stripe then also created a Refund object for the release; remit never made one, so the
    charge's `refunds` list holds the refunds it really has.

    Source: https://docs.stripe.com/changelog/basil/2025-03-31/remove-refund-from-partial-capture-and-payment-cancellation-flow
    """

    resources = ("charge",)
    fields = ("amount", "amount_captured", "amount_refunded", "captured", "refunded",
              "authorization_released")  # fmt: skip

    def downgrade(self, obj: JsonObject, context: RenderContext) -> None:
        released = released_minor(obj)
        refunded = obj.get("amount_refunded")
        if released and isinstance(refunded, int):
            obj["amount_refunded"] = refunded + released
            obj["refunded"] = refunded + released >= _integer(obj.get("amount"))


def released_minor(charge: JsonObject) -> int:
    """The amount of a charge released uncaptured: what a capture left of it, or all of it
    when its authorization was released; 0 for an object that is not a whole charge (no id),
    which lacks what this takes."""
    amount = charge.get("amount")
    if not isinstance(amount, int) or "id" not in charge:
        return 0
    if charge.get("captured") is True:
        return max(amount - _integer(charge.get("amount_captured")), 0)
    return amount if charge.get("authorization_released") is True else 0


def _integer(value: JsonValue) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _drop_enum_value(schema: JsonValue, value: str) -> None:
    """Remove `value` from every `enum` inside `schema` (a nullable enum is an anyOf)."""
    if isinstance(schema, dict):
        values = schema.get("enum")
        if isinstance(values, list):
            schema["enum"] = [item for item in values if item != value]
        for item in schema.values():
            _drop_enum_value(item, value)
    elif isinstance(schema, list):
        for item in schema:
            _drop_enum_value(item, value)
