"""2022-11-15: PaymentIntents and Charges stop embedding their charges and refunds."""

from typing import Final

from remit.core.jsonview import JsonObject
from remit.versioning.change import RelatedList, RenderContext, VersionChange, json_page
from remit.versioning.schema_edit import list_of, set_property

CHARGES_OF_PAYMENT_INTENT: Final = RelatedList(
    resource="charge",
    filter_param="payment_intent",
    url_template="/v1/charges?payment_intent={id}",
    # An intent without a latest charge has never had one.
    empty_when_null="latest_charge",
)
REFUNDS_OF_CHARGE: Final = RelatedList(
    resource="refund", filter_param="charge", url_template="/v1/charges/{id}/refunds"
)


class RemovePaymentIntentCharges(VersionChange):
    """PaymentIntent no longer has `charges`, the list of every charge attempt; use
    `latest_charge` (expandable) and list charges with `payment_intent=`.

    Source: https://docs.stripe.com/changelog/2022-11-15/removes-charges-attribute-paymentintent
    """

    resources = ("payment_intent",)
    fields = ("latest_charge",)
    adds_back = ("charges",)
    needs = (CHARGES_OF_PAYMENT_INTENT,)

    def downgrade(self, obj: JsonObject, context: RenderContext) -> None:
        intent_id = obj.get("id")
        if not isinstance(intent_id, str):
            return  # not a whole intent (no id): no list to show
        charges = context.related_page(CHARGES_OF_PAYMENT_INTENT, obj)
        if charges is None:
            return  # they could not be listed: shown as the latest version shows them, not at all
        obj["charges"] = json_page(
            charges, url=CHARGES_OF_PAYMENT_INTENT.url_template.format(id=intent_id)
        )

    def downgrade_schema(self, schemas: dict[str, JsonObject]) -> None:
        charges = list_of({"$ref": "#/components/schemas/charge"})
        set_property(schemas, "payment_intent", "charges", charges)


class StopAutoexpandingChargeRefunds(VersionChange):
    """Charge `refunds` is no longer included unless expanded (`expand[]=refunds`); before
    2022-11-15 every Charge carried the list of its refunds.

    Source: https://docs.stripe.com/changelog/2022-11-15/deprecates-charges-auto-expand
    """

    resources = ("charge",)
    fields = ("refunds",)
    needs = (REFUNDS_OF_CHARGE,)

    def downgrade(self, obj: JsonObject, context: RenderContext) -> None:
        charge_id = obj.get("id")
        if not isinstance(charge_id, str) or isinstance(obj.get("refunds"), dict):
            return  # not a whole charge (no id), or the client expanded it already
        refunds = context.related_page(REFUNDS_OF_CHARGE, obj)
        if refunds is None:
            return  # they could not be listed: shown as the latest version shows them
        obj["refunds"] = json_page(refunds, url=REFUNDS_OF_CHARGE.url_template.format(id=charge_id))

    def downgrade_schema(self, schemas: dict[str, JsonObject]) -> None:
        refunds = list_of({"$ref": "#/components/schemas/refund"})
        set_property(schemas, "charge", "refunds", refunds)
