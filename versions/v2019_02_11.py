"""2019-02-11: PaymentIntents speak of payment methods instead of sources."""

from typing import Final

from remit.core.jsonview import JsonObject, JsonValue
from remit.versioning.change import Form, RenderContext, RequestRefusedError, VersionChange
from remit.versioning.operations import (
    CONFIRM_PAYMENT_INTENT,
    CREATE_PAYMENT_INTENT,
    UPDATE_PAYMENT_INTENT,
)
from remit.versioning.schema_edit import (
    properties,
    rename_enum_values,
    rename_property,
    set_property,
)

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
    """PaymentIntent `next_source_action` is renamed `next_action`, and the action in it,
    `authorize_with_url`, is renamed `redirect_to_url`.

    Older versions see `next_source_action`, whose action is
    `{"type": "authorize_with_url", "authorize_with_url": {"url", "return_url"}}`, as clients
    of the time read it (stripe-android's `PaymentIntent.getAuthorizationUrl` read
    `next_source_action.authorize_with_url.url`). The `use_stripe_sdk` action, which a
    client's SDK handles in place, did not exist yet: older versions see it as
    `authorize_with_url` too, to remit's 3-D Secure page (its `stripe_js`, a page that works
    in a window of its own) with no `return_url`.

    Source: https://docs.stripe.com/changelog/2019-02-11/renames-next-source-action-next-action
    (the action's own rename is from that page and from client code of the time)
    """

    resources = ("payment_intent",)
    fields = ("next_action", "next_action.redirect_to_url", "next_action.use_stripe_sdk.stripe_js")
    adds_back = ("next_source_action",)

    def downgrade(self, obj: JsonObject, context: RenderContext) -> None:
        if "next_action" in obj:
            obj["next_source_action"] = _next_source_action(obj.pop("next_action"))

    def downgrade_schema(self, schemas: dict[str, JsonObject]) -> None:
        rename_property(schemas, "payment_intent", "next_action", "next_source_action")
        set_property(
            schemas,
            "payment_intent",
            "next_source_action",
            {"anyOf": [_NEXT_SOURCE_ACTION_SCHEMA, {"type": "null"}]},
        )


_AUTHORIZE_WITH_URL: Final = "authorize_with_url"
_NEXT_SOURCE_ACTION_SCHEMA: Final[JsonObject] = {
    "type": "object",
    "title": "NextSourceAction",
    "required": ["type", _AUTHORIZE_WITH_URL],
    # Closed, so that a `redirect_to_url` or `use_stripe_sdk` left in it fails the checks of
    # each version's rendering against its document.
    "additionalProperties": False,
    "properties": {
        "type": {"type": "string", "enum": [_AUTHORIZE_WITH_URL]},
        _AUTHORIZE_WITH_URL: {"$ref": "#/components/schemas/RedirectToUrl"},
    },
}


def _next_source_action(action: JsonValue) -> JsonValue:
    """`next_action` as `next_source_action` showed it. Every action remit asks for is 3-D
    Secure's, as a redirect or for the SDK, and shows as `authorize_with_url`. A new hash: the
    one given may be shared with the object before an event, which is rendered too."""
    if not isinstance(action, dict):
        return action  # null: no action
    redirect = action.get("redirect_to_url")
    sdk = action.get("use_stripe_sdk")
    if isinstance(redirect, dict):
        authorize: JsonObject = {
            "url": redirect.get("url"),
            "return_url": redirect.get("return_url"),
        }
    elif isinstance(sdk, dict):
        authorize = {"url": sdk.get("stripe_js"), "return_url": None}
    else:
        authorize = {"url": None, "return_url": None}
    return {"type": _AUTHORIZE_WITH_URL, _AUTHORIZE_WITH_URL: authorize}
