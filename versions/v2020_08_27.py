"""2020-08-27: Customers stop embedding their lists, and 3-D Secure reports a `result`."""

from typing import Final

from remit.core.jsonview import JsonObject
from remit.versioning.change import RenderContext, VersionChange, json_list
from remit.versioning.schema_edit import list_of, properties, set_property

CUSTOMER_LISTS: Final = ("sources", "subscriptions", "tax_ids")
"""The lists a Customer embedded before 2020-08-27, each at `/v1/customers/{id}/<name>`."""

SUCCEEDED_RESULTS: Final = frozenset({"authenticated", "attempt_acknowledged"})
"""3-D Secure results that the old `succeeded: true` stood for: the customer authenticated, or
the issuer acknowledged the attempt (a card not enrolled succeeds without authenticating)."""


class StopAutoexpandingCustomerLists(VersionChange):
    """Customer `sources`, `subscriptions` and `tax_ids` are no longer included unless expanded;
    before 2020-08-27 every Customer carried the three lists. remit has no sources,
    subscriptions or tax ids (payment methods are listed with `GET /v1/payment_methods`), so
    older versions see three empty lists.

    Source: https://docs.stripe.com/changelog/2020-08-27/deprecates-auto-expansion-customer-sources
    (and https://docs.stripe.com/changelog/2020-08-27/deprecates-auto-expansion-tax-id-customer)
    """

    resources = ("customer",)
    adds_back = CUSTOMER_LISTS

    def downgrade(self, obj: JsonObject, context: RenderContext) -> None:
        customer_id = obj.get("id")
        if not isinstance(customer_id, str) or obj.get("deleted") is True:
            return  # not a whole customer (no id), or a deleted one, which has no lists
        for name in CUSTOMER_LISTS:
            obj[name] = json_list([], url=f"/v1/customers/{customer_id}/{name}")

    def downgrade_schema(self, schemas: dict[str, JsonObject]) -> None:
        for name in CUSTOMER_LISTS:
            set_property(schemas, "customer", name, list_of({"type": "object"}))


class ReplaceThreeDSecureBooleansWithResult(VersionChange):
    """A Charge's `payment_method_details.card.three_d_secure` no longer has the booleans
    `succeeded` and `authenticated`; its `result` says what happened. Older versions show both
    booleans beside `result`: `authenticated` is true when `result` is `authenticated`,
    `succeeded` when it is `authenticated` or `attempt_acknowledged`.

    Source: https://docs.stripe.com/changelog/2020-08-27/updates-3d-scure-charge-object
    """

    resources = ("charge",)
    fields = ("payment_method_details.card.three_d_secure.result",)
    adds_back = (
        "payment_method_details.card.three_d_secure.succeeded",
        "payment_method_details.card.three_d_secure.authenticated",
    )

    def downgrade(self, obj: JsonObject, context: RenderContext) -> None:
        details = obj.get("payment_method_details")
        card = details.get("card") if isinstance(details, dict) else None
        secure = card.get("three_d_secure") if isinstance(card, dict) else None
        if not (isinstance(details, dict) and isinstance(card, dict) and isinstance(secure, dict)):
            return  # not a card charge, 3-D Secure not attempted, or not a whole charge
        # Nested objects are shared with the caller's latest-schema body: copy, never mutate.
        result = secure.get("result")
        old_secure: JsonObject = {
            **secure,
            "authenticated": result == "authenticated",
            "succeeded": result in SUCCEEDED_RESULTS,
        }
        obj["payment_method_details"] = {**details, "card": {**card, "three_d_secure": old_secure}}

    def downgrade_schema(self, schemas: dict[str, JsonObject]) -> None:
        secure = properties(schemas, "ChargeThreeDSecure")
        secure["authenticated"] = {"type": "boolean"}
        secure["succeeded"] = {"type": "boolean"}
