"""`/v1/payouts`: sending available funds to the merchant's bank."""

from remit.core.jsonview import JsonObject, enum_numbers, to_json
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.expand import register_resource, register_unfilled
from remit.rest.grpc_call import call
from remit.rest.listing import created_filter, list_envelope, page_fields
from remit.rest.params import (
    UNSET,
    Currency,
    Enum,
    Integer,
    IntRange,
    Metadata,
    PageRequest,
    RangeFilter,
    Schema,
    StatementDescriptor,
    String,
    list_schema,
)
from remit_api.ledger.v1 import ledger_pb2 as pb

PATH = "/v1/payouts"

_METHODS = enum_numbers(pb.PayoutMethod.DESCRIPTOR)
_SOURCE_TYPES = enum_numbers(pb.PayoutSourceType.DESCRIPTOR)
_STATUSES = enum_numbers(pb.PayoutStatus.DESCRIPTOR)

CREATE = Schema(
    {
        "amount": Integer(min=1),
        "currency": Currency(),
        "description": String(),
        "destination": String(),
        "metadata": Metadata(),
        "method": Enum(*_METHODS),
        "source_type": Enum(*_SOURCE_TYPES),
        "statement_descriptor": StatementDescriptor(needs_letter=False),
    },
    required={"amount", "currency"},
)
RETRIEVE = Schema({})
UPDATE = Schema({"metadata": Metadata()})
CANCEL = Schema({})
LIST = list_schema(
    {"arrival_date": RangeFilter(), "destination": String(), "status": Enum(*_STATUSES)}
)


async def create(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.CreatePayoutRequest(
        amount=context.int_param("amount"),
        currency=context.str_param("currency"),
        metadata=context.new_metadata(),
    )
    for name in ("description", "destination", "statement_descriptor"):
        value = context.optional_str(name)
        if value is not None:
            setattr(request, name, value)
    method = context.optional_str("method")
    if method is not None:
        request.method = _METHODS[method]  # type: ignore[assignment]
    source_type = context.optional_str("source_type")
    if source_type is not None:
        request.source_type = _SOURCE_TYPES[source_type]  # type: ignore[assignment]
    reply = await call(deps.ledger.CreatePayout, request, context)
    return to_json(reply.payout)


async def fetch_payout(context: ApiContext, deps: object, payout_id: str) -> JsonObject:
    """A payout by id, for `expand[]` (a balance transaction's `source`, a payout's
    `original_payout` or `reversed_by`)."""
    assert isinstance(deps, Dependencies)
    reply = await call(deps.ledger.GetPayout, pb.GetPayoutRequest(id=payout_id), context)
    return to_json(reply.payout)


register_resource(pb.Payout.DESCRIPTOR, fetch_payout, id_prefix="po")
# The external account paid to: remit keeps none, and refuses a `destination` (see
# remit.ledger.payouts), so every payout's is null.
register_unfilled("payout", "destination")


async def retrieve(context: ApiContext, deps: Dependencies) -> JsonObject:
    return await fetch_payout(context, deps, context.path["payout"])


async def update(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.UpdatePayoutRequest(id=context.path["payout"])
    metadata = context.params.get("metadata")
    if metadata is UNSET:
        request.clear_metadata = True
    elif isinstance(metadata, dict):
        for key, value in metadata.items():
            if value == "":
                request.unset_metadata_keys.append(key)
            else:
                request.metadata[key] = value
    reply = await call(deps.ledger.UpdatePayout, request, context)
    return to_json(reply.payout)


async def cancel(context: ApiContext, deps: Dependencies) -> JsonObject:
    reply = await call(
        deps.ledger.CancelPayout, pb.CancelPayoutRequest(id=context.path["payout"]), context
    )
    return to_json(reply.payout)


async def list_payouts(context: ApiContext, deps: Dependencies) -> JsonObject:
    page = PageRequest.from_params(context.params)
    request = pb.ListPayoutsRequest(**page_fields(page))  # type: ignore[arg-type]
    arrival = context.params.get("arrival_date")
    if isinstance(arrival, IntRange):
        request.arrival_date.CopyFrom(created_filter(arrival))
    destination = context.optional_str("destination")
    if destination is not None:
        request.destination = destination
    status = context.optional_str("status")
    if status is not None:
        request.status = _STATUSES[status]  # type: ignore[assignment]
    reply = await call(deps.ledger.ListPayouts, request, context)
    return list_envelope(reply.data, has_more=reply.has_more, url=PATH)
