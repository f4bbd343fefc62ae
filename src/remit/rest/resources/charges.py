"""`/v1/charges`: the charge attempts behind PaymentIntents, which a merchant may describe
further (description, metadata, receipt email, shipping) but not otherwise change."""

from remit.core.jsonview import JsonObject, to_json
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.embedded_lists import refunds_of_charges
from remit.rest.expand import register_included, register_resource, register_unfilled
from remit.rest.grpc_call import call
from remit.rest.listing import page_fields
from remit.rest.params import (
    Email,
    Metadata,
    PageRequest,
    Schema,
    String,
    list_schema,
)
from remit.rest.resources.addresses import put_shipping, shipping_field
from remit.rest.resources.refunds import metadata_update
from remit_api.payments.v1 import payments_pb2 as pb

PATH = "/v1/charges"

RETRIEVE = Schema({})
# Stripe also takes customer, fraud_details and transfer_group here; remit has no use for them
# yet, so they are refused as unknown rather than accepted and ignored.
UPDATE = Schema(
    {
        "description": String(max_length=1000, unsettable=True),
        "metadata": Metadata(),
        "receipt_email": Email(max_length=800, unsettable=True),
        "shipping": shipping_field(unsettable=True),
    }
)
LIST = list_schema({"customer": String(), "payment_intent": String(), "transfer_group": String()})


EMBEDDED_REFUNDS = 100
"""A charge shows at most this many of its refunds, newest first (`has_more` beyond)."""


def shows_refunds(expanded: list[str]) -> bool:
    """Whether the answer shows the charge's `refunds` (only when expanded, since 2022-11-15),
    itself or on the way to a field of its refunds (`refunds.data.balance_transaction`): the
    core reads them only then (the request says `without_refunds` otherwise)."""
    return any(path == "refunds" or path.startswith("refunds.") for path in expanded)


def render_charge(charge: pb.Charge, expanded: list[str]) -> JsonObject:
    """Latest-schema JSON; `refunds` appears only when expanded (since 2022-11-15)."""
    body = to_json(charge)
    if not shows_refunds(expanded):
        body.pop("refunds", None)
    return body


async def fetch_charge(context: ApiContext, deps: object, charge_id: str) -> JsonObject:
    assert isinstance(deps, Dependencies)
    reply = await call(
        deps.payments.GetCharge, pb.GetChargeRequest(id=charge_id, without_refunds=True), context
    )
    return render_charge(reply.charge, [])


async def include_refunds(context: ApiContext, deps: object, charge: JsonObject) -> JsonObject:
    """The `refunds` of a charge fetched without them (a PaymentIntent's expanded
    `latest_charge`, asked for `latest_charge.refunds`): the list the core embeds."""
    assert isinstance(deps, Dependencies)
    charge_id = charge.get("id")
    assert isinstance(charge_id, str)
    request = pb.ListRefundsRequest(limit=EMBEDDED_REFUNDS, charge=charge_id)
    reply = await call(deps.payments.ListRefunds, request, context)
    refunds = pb.RefundList(
        data=reply.data, has_more=reply.has_more, url=f"/v1/charges/{charge_id}/refunds"
    )
    return to_json(refunds)


register_resource(pb.Charge.DESCRIPTOR, fetch_charge, id_prefix="ch")
register_included("charge", "refunds", include_refunds)
# Connect's application, fee, account and transfers, and (before 2025-03-31) the invoice: remit
# has none. `transfer` Stripe shows only on destination charges, and remit's never have it:
# left out unless expanded, and null when it is.
register_unfilled(
    "charge", "application", "application_fee", "on_behalf_of", "source_transfer", "invoice"
)
register_unfilled("charge", "transfer", left_out=True)


def _nested(paths: list[str], prefix: str) -> list[str]:
    return [p.removeprefix(prefix) for p in paths if p.startswith(prefix)]


def _rendered(charge: pb.Charge, context: ApiContext) -> JsonObject:
    return render_charge(charge, context.expand)


async def retrieve(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.GetChargeRequest(
        id=context.path["charge"], without_refunds=not shows_refunds(context.expand)
    )
    reply = await call(deps.payments.GetCharge, request, context)
    return _rendered(reply.charge, context)


async def update(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.UpdateChargeRequest(
        id=context.path["charge"], without_refunds=not shows_refunds(context.expand)
    )
    for name in ("description", "receipt_email"):
        if name in context.params:
            # An unset parameter (`description=`) clears the field: sent as "".
            setattr(request, name, context.optional_str(name) or "")
    put_shipping(request, context.params)
    metadata_update(request, context)
    reply = await call(deps.payments.UpdateCharge, request, context)
    return _rendered(reply.charge, context)


async def _add_refunds_left_out(
    reply: pb.ListChargesResponse, context: ApiContext, deps: Dependencies
) -> None:
    """The refunds of the charges the page's answer left without them, as its refunds took
    what one answer may hold: asked for on their own, as many calls as they need."""
    pages = await refunds_of_charges(deps, context, reply.refunds_left_out)
    for charge in reply.data:
        if charge.id in pages:
            page = pages[charge.id]
            charge.refunds.data.extend(page.data)
            charge.refunds.has_more = page.has_more


async def list_charges(context: ApiContext, deps: Dependencies) -> JsonObject:
    if "transfer_group" in context.params:
        # remit has no transfer groups (no separate charges and transfers): no charge is in
        # any group, so a list filtered by one is empty, whatever else it asks.
        return {"object": "list", "data": [], "has_more": False, "url": PATH}
    page = PageRequest.from_params(context.params)
    item_expand = _nested(context.expand, "data.")
    request = pb.ListChargesRequest(**page_fields(page))  # type: ignore[arg-type]
    request.without_refunds = not shows_refunds(item_expand)
    for name in ("customer", "payment_intent"):
        value = context.optional_str(name)
        if value is not None:
            setattr(request, name, value)
    reply = await call(deps.payments.ListCharges, request, context)
    if reply.refunds_left_out:
        await _add_refunds_left_out(reply, context, deps)
    return {
        "object": "list",
        "data": [render_charge(charge, item_expand) for charge in reply.data],
        "has_more": reply.has_more,
        "url": PATH,
    }
