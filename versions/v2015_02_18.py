"""2015-02-18: charges that succeed say so."""

from remit.core.jsonview import JsonObject
from remit.versioning.change import RenderContext, VersionChange
from remit.versioning.schema_edit import properties, rename_enum_values


class RenameSucceededChargeStatus(VersionChange):
    """A successful Charge has `status: "succeeded"`; before 2015-02-18 it was `"paid"`.

    Source: https://docs.stripe.com/changelog/2015-02-18/charges-succeed-have-succeeded-status
    """

    resources = ("charge",)
    fields = ("status",)

    def downgrade(self, obj: JsonObject, context: RenderContext) -> None:
        if obj.get("status") == "succeeded":
            obj["status"] = "paid"

    def downgrade_schema(self, schemas: dict[str, JsonObject]) -> None:
        rename_enum_values(properties(schemas, "charge")["status"], {"succeeded": "paid"})
