"""2014-06-17: a Charge's refunds are a list object."""

from remit.core.jsonview import JsonObject
from remit.versioning.change import RenderContext, VersionChange
from remit.versioning.schema_edit import set_property


class TurnChargeRefundsIntoAList(VersionChange):
    """Charge `refunds` is a list object (`object: "list"`, `data`, `has_more`, `url`); before
    2014-06-17 it was a plain array of the charge's refunds.

    Source: https://docs.stripe.com/changelog/2014-06-17/invoices-include-refunds-sublist-refunds-field
    """

    resources = ("charge",)
    fields = ("refunds", "refunds.data")

    def downgrade(self, obj: JsonObject, context: RenderContext) -> None:
        refunds = obj.get("refunds")
        if isinstance(refunds, dict) and isinstance(refunds.get("data"), list):
            obj["refunds"] = refunds["data"]

    def downgrade_schema(self, schemas: dict[str, JsonObject]) -> None:
        refunds: JsonObject = {"type": "array", "items": {"$ref": "#/components/schemas/refund"}}
        set_property(schemas, "charge", "refunds", refunds)
