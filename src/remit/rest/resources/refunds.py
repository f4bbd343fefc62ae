"""`/v1/refunds`: return captured money, in full or in parts, never more than was captured."""

from remit.core.jsonview import JsonObject, enum_numbers, to_json
from remit.rest.amounts import amount_field
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.errors import StripeError
from remit.rest.expand import register_resource, register_unfilled
from remit.rest.grpc_call import call
from remit.rest.listing import list_envelope, page_fields
from remit.rest.params import (
    UNSET,
    Enum,
    Metadata,
    PageRequest,
    Schema,
    String,
    list_schema,
)
from remit_api.payments.v1 import payments_pb2 as pb

PATH = "/v1/refunds"
_REASONS = {
    name: number
    for name, number in enum_numbers(pb.RefundReason.DESCRIPTOR).items()
    if name != "expired_uncaptured_charge"  # set by remit, never by a caller
}

CREATE = Schema(
    {
        "charge": String(),
        "payment_intent": String(),
        "amount": amount_field(),
        "reason": Enum(*_REASONS),
        "metadata": Metadata(),
    },
    exclusive=[("charge", "payment_intent")],
)
RETRIEVE = Schema({})
UPDATE = Schema({"metadata": Metadata()})
CANCEL = Schema({})
LIST = list_schema({"charge": String(), "payment_intent": String()})
# A charge's own refunds, under the charge (the URL of `Charge.refunds` on versions before
# 2022-11-15, which stripe-python pages through, and `ListObject.create` posts to).
CHARGE_REFUNDS = list_schema({})
# A refund created under its charge takes what `POST /v1/refunds` takes, the charge aside: the
# URL names it. `payment_intent` is Stripe's parameter here too, and is refused as it is beside
# `charge` there (see `create_for_charge`).
CHARGE_REFUND_CREATE = Schema({name: f for name, f in CREATE.fields.items() if name != "charge"})


async def fetch_refund(context: ApiContext, deps: object, refund_id: str) -> JsonObject:
    assert isinstance(deps, Dependencies)
    reply = await call(deps.payments.GetRefund, pb.GetRefundRequest(id=refund_id), context)
    return to_json(reply.refund)


register_resource(pb.Refund.DESCRIPTOR, fetch_refund, id_prefix="re")
# Connect's transfer reversals: remit makes no transfers.
register_unfilled("refund", "transfer_reversal", "source_transfer_reversal")


async def create(context: ApiContext, deps: Dependencies) -> JsonObject:
    charge, intent = context.optional_str("charge"), context.optional_str("payment_intent")
    return await _create(context, deps, charge, intent)


async def create_for_charge(context: ApiContext, deps: Dependencies) -> JsonObject:
    """`POST /v1/charges/{charge}/refunds`: the refund `POST /v1/refunds` makes with `charge=`
    (the same core call, so the same errors; the idempotency key is bound to this path)."""
    if "payment_intent" in context.params:
        # What `POST /v1/refunds` answers to both a charge and an intent.
        raise StripeError.invalid_request(
            "Received both charge and payment_intent parameters. Please pass in only one.",
            code="parameters_exclusive",
            param="payment_intent",
        )
    return await _create(context, deps, context.path["charge"], None)


async def _create(
    context: ApiContext, deps: Dependencies, charge: str | None, intent: str | None
) -> JsonObject:
    if charge is None and intent is None:
        raise StripeError.invalid_request(
            "One of the following params should be provided for this request: payment_intent "
            "or charge.",
            code="parameter_missing",
            param="charge",
        )
    request = pb.CreateRefundRequest(metadata=context.new_metadata())
    if charge is not None:
        request.charge = charge
    if intent is not None:
        request.payment_intent = intent
    amount = context.optional_int("amount")
    if amount is not None:
        request.amount = amount
    reason = context.optional_str("reason")
    if reason is not None:
        request.reason = _REASONS[reason]  # type: ignore[assignment]
    reply = await call(deps.payments.CreateRefund, request, context)
    return to_json(reply.refund)


async def retrieve(context: ApiContext, deps: Dependencies) -> JsonObject:
    reply = await call(
        deps.payments.GetRefund, pb.GetRefundRequest(id=context.path["refund"]), context
    )
    return to_json(reply.refund)


async def update(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.UpdateRefundRequest(id=context.path["refund"])
    _metadata_update(request, context)
    reply = await call(deps.payments.UpdateRefund, request, context)
    return to_json(reply.refund)


def _metadata_update(
    request: pb.UpdateRefundRequest
    | pb.UpdateDisputeRequest
    | pb.UpdatePaymentIntentRequest
    | pb.CapturePaymentIntentRequest
    | pb.UpdateChargeRequest,
    context: ApiContext,
) -> None:
    """Stripe's metadata update: `metadata=` clears all, `metadata[k]=` unsets k."""
    value = context.params.get("metadata")
    if value is UNSET:
        request.clear_metadata = True
        return
    for key, item in context.str_map("metadata").items():
        if item == "":
            request.unset_metadata_keys.append(key)
        else:
            request.metadata[key] = item


async def cancel(context: ApiContext, deps: Dependencies) -> JsonObject:
    reply = await call(
        deps.payments.CancelRefund, pb.CancelRefundRequest(id=context.path["refund"]), context
    )
    return to_json(reply.refund)


async def list_refunds(context: ApiContext, deps: Dependencies) -> JsonObject:
    page = PageRequest.from_params(context.params)
    request = pb.ListRefundsRequest(**page_fields(page))  # type: ignore[arg-type]
    for name in ("charge", "payment_intent"):
        value = context.optional_str(name)
        if value is not None:
            setattr(request, name, value)
    reply = await call(deps.payments.ListRefunds, request, context)
    return list_envelope(reply.data, has_more=reply.has_more, url=PATH)


async def list_charge_refunds(context: ApiContext, deps: Dependencies) -> JsonObject:
    charge_id = context.path["charge"]
    # The charge exists (404 otherwise); its refunds are the page read next.
    await call(
        deps.payments.GetCharge, pb.GetChargeRequest(id=charge_id, without_refunds=True), context
    )
    page = PageRequest.from_params(context.params)
    request = pb.ListRefundsRequest(**page_fields(page), charge=charge_id)  # type: ignore[arg-type]
    reply = await call(deps.payments.ListRefunds, request, context)
    return list_envelope(
        reply.data, has_more=reply.has_more, url=f"/v1/charges/{charge_id}/refunds"
    )


async def retrieve_charge_refund(context: ApiContext, deps: Dependencies) -> JsonObject:
    """A refund under its charge: one of another charge is not found here."""
    refund = await retrieve(context, deps)
    if refund.get("charge") != context.path["charge"]:
        raise StripeError.resource_missing("refund", context.path["refund"])
    return refund


async def update_charge_refund(context: ApiContext, deps: Dependencies) -> JsonObject:
    """A refund's metadata, updated under its charge. One of another charge is not found here,
    and checked before the update: a 404 must not have changed it. A refund never moves to
    another charge, so the check cannot go stale before the update."""
    await retrieve_charge_refund(context, deps)
    return await update(context, deps)


metadata_update = _metadata_update
