"""2019-02-11: PaymentIntents speak of payment methods instead of sources."""

from typing import Final

from remit.core.jsonview import JsonObject
from remit.versioning.change import Form, RenderContext, RequestRefusedError, VersionChange
from remit.versioning.operations import (
    CONFIRM_PAYMENT_INTENT,
    CREATE_PAYMENT_INTENT,
    UPDATE_PAYMENT_INTENT,
)
from remit.versioning.schema_edit import properties, rename_enum_values, rename_property

_OLD_STATUSES: Final = {
    "requires_payment_method": "requires_source",
    "requires_action": "requires_source_action",
}


class RenamePaymentIntentSourceStatuses(VersionChange):
    """PaymentIntent statuses `requires_source` and `requires_source_action` are renamed
    `requires_payment_method` and `requires_action`.

    Source: https://docs.stripe.com/changelog/2019-02-11/renames-several-statuses-payment-intents
    """

    resources = ("payment_intent",)
    fields = ("status",)

    def downgrade(self, obj: JsonObject, context: RenderContext) -> None:
        status = obj.get("status")
        if isinstance(status, str) and status in _OLD_STATUSES:
            obj["status"] = _OLD_STATUSES[status]

    def downgrade_schema(self, schemas: dict[str, JsonObject]) -> None:
        rename_enum_values(properties(schemas, "payment_intent")["status"], _OLD_STATUSES)


class RenameAllowedSourceTypes(VersionChange):
    """PaymentIntent `allowed_source_types` is renamed `payment_method_types`, on the object
    and as a parameter of create, confirm and update.

    Source: https://docs.stripe.com/changelog/2019-02-11/renames-allowed-source-types-payment-method-types
    """

    resources = ("payment_intent",)
    fields = ("payment_method_types",)
    adds_back = ("allowed_source_types",)
    operations = (CREATE_PAYMENT_INTENT, CONFIRM_PAYMENT_INTENT, UPDATE_PAYMENT_INTENT)
    params = ("payment_method_types",)
    old_params = ("allowed_source_types",)

    def downgrade(self, obj: JsonObject, context: RenderContext) -> None:
        if "payment_method_types" in obj:
            obj["allowed_source_types"] = obj.pop("payment_method_types")

    def upgrade_request(self, operation: str, form: Form) -> None:
        if "payment_method_types" in form:
            # The new name did not exist yet at the client's version.
            raise RequestRefusedError(
                "Received unknown parameter: payment_method_types. Did you mean "
                "allowed_source_types?",
                code="parameter_unknown",
                param="payment_method_types",
            )
        if "allowed_source_types" in form:
            form["payment_method_types"] = form.pop("allowed_source_types")

    def downgrade_schema(self, schemas: dict[str, JsonObject]) -> None:
        rename_property(schemas, "payment_intent", "payment_method_types", "allowed_source_types")

    def downgrade_params(self, operation: str, properties: dict[str, JsonObject]) -> None:
        if "payment_method_types" in properties:
            properties["allowed_source_types"] = properties.pop("payment_method_types")


class RenameNextSourceAction(VersionChange):
    """PaymentIntent `next_source_action` is renamed `next_action`.

    Source: https://docs.stripe.com/changelog/2019-02-11/renames-next-source-action-next-action
    """

    resources = ("payment_intent",)
    fields = ("next_action",)
    adds_back = ("next_source_action",)

    def downgrade(self, obj: JsonObject, context: RenderContext) -> None:
        if "next_action" in obj:
            obj["next_source_action"] = obj.pop("next_action")

    def downgrade_schema(self, schemas: dict[str, JsonObject]) -> None:
        rename_property(schemas, "payment_intent", "next_action", "next_source_action")
