"""2025-03-31.basil: invoices can have several partial payments."""

from remit.core.jsonview import JsonObject
from remit.versioning.change import RenderContext, VersionChange
from remit.versioning.schema_edit import set_property


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
