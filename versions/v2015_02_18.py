"""2015-02-18: charges that succeed say so, and charges and customers speak of sources."""

from remit.core.jsonview import JsonObject
from remit.versioning.change import RenderContext, VersionChange, json_list
from remit.versioning.schema_edit import list_of, properties, rename_enum_values, set_property


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


class ReplaceChargeCardWithSource(VersionChange):
    """Charge `card` is replaced by `source`; before 2015-02-18 a Charge had both, `card`
    holding the same card as `source`. remit charges are made with payment methods, never with
    a card source (Stripe's `source` is null for them), so older versions see `card: null`.

    Source: https://docs.stripe.com/changelog/2015-02-18/charges-have-source-field-accepts-source-card
    """

    resources = ("charge",)
    adds_back = ("card",)

    def downgrade(self, obj: JsonObject, context: RenderContext) -> None:
        if "id" in obj:
            obj["card"] = None

    def downgrade_schema(self, schemas: dict[str, JsonObject]) -> None:
        set_property(schemas, "charge", "card", {"type": "null"})


class ReplaceCustomerCardsWithSources(VersionChange):
    """Customer `cards` and `default_card` are replaced by `sources` and `default_source`;
    before 2015-02-18 a Customer had both pairs, `cards` listing the same cards as `sources`.
    remit customers have no card sources, so older versions see an empty `cards` list and
    `default_card: null`.

    Source: https://docs.stripe.com/changelog/2015-02-18/customers-have-source-field-accepts-source-card
    """

    resources = ("customer",)
    adds_back = ("cards", "default_card")

    def downgrade(self, obj: JsonObject, context: RenderContext) -> None:
        customer_id = obj.get("id")
        if not isinstance(customer_id, str) or obj.get("deleted") is True:
            return  # not a whole customer (no id), or a deleted one
        sources = obj.get("sources")
        cards = sources.get("data") if isinstance(sources, dict) else None
        obj["cards"] = json_list(
            [card for card in cards if isinstance(card, dict)] if isinstance(cards, list) else [],
            url=f"/v1/customers/{customer_id}/cards",
        )
        obj["default_card"] = None

    def downgrade_schema(self, schemas: dict[str, JsonObject]) -> None:
        set_property(schemas, "customer", "cards", list_of({"type": "object"}))
        set_property(schemas, "customer", "default_card", {"type": "null"})
