"""`/v1/disputes`: the chargebacks of captured charges; the merchant answers them with
evidence, or accepts them (`close`)."""

from remit.core.jsonview import JsonObject, to_json
from remit.payments.disputes import (
    EVIDENCE_TEXT_FIELDS,
    LONG_EVIDENCE_LENGTH,
    SHORT_EVIDENCE_LENGTH,
    long_evidence,
)
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.expand import register_resource
from remit.rest.grpc_call import call
from remit.rest.listing import list_envelope, page_fields
from remit.rest.params import (
    UNSET,
    Boolean,
    Metadata,
    Object,
    PageRequest,
    Schema,
    String,
    list_schema,
)
from remit.rest.resources.refunds import metadata_update
from remit_api.payments.v1 import payments_pb2 as pb

PATH = "/v1/disputes"

# The text fields only: the file ones take ids of file uploads, which remit has none of, and
# are refused as unknown parameters.
_EVIDENCE = Object(
    {
        name: String(
            max_length=LONG_EVIDENCE_LENGTH if long_evidence(name) else SHORT_EVIDENCE_LENGTH,
            unsettable=True,
        )
        for name in EVIDENCE_TEXT_FIELDS
    }
)

RETRIEVE = Schema({})
LIST = list_schema({"charge": String(), "payment_intent": String()})
UPDATE = Schema({"evidence": _EVIDENCE, "metadata": Metadata(), "submit": Boolean()})
CLOSE = Schema({})


async def fetch_dispute(context: ApiContext, deps: object, dispute_id: str) -> JsonObject:
    """A dispute by id, for `expand[]` (a balance transaction's `source`)."""
    assert isinstance(deps, Dependencies)
    reply = await call(deps.payments.GetDispute, pb.GetDisputeRequest(id=dispute_id), context)
    return to_json(reply.dispute)


register_resource(pb.Dispute.DESCRIPTOR, fetch_dispute, id_prefix="dp")


async def retrieve(context: ApiContext, deps: Dependencies) -> JsonObject:
    return await fetch_dispute(context, deps, context.path["dispute"])


async def list_disputes(context: ApiContext, deps: Dependencies) -> JsonObject:
    page = PageRequest.from_params(context.params)
    request = pb.ListDisputesRequest(**page_fields(page))  # type: ignore[arg-type]
    for name in ("charge", "payment_intent"):
        value = context.optional_str(name)
        if value is not None:
            setattr(request, name, value)
    reply = await call(deps.payments.ListDisputes, request, context)
    return list_envelope(reply.data, has_more=reply.has_more, url=PATH)


async def update(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.UpdateDisputeRequest(id=context.path["dispute"])
    evidence = context.params.get("evidence")
    if isinstance(evidence, dict):
        for name, value in evidence.items():
            # `evidence[name]=` clears the field.
            setattr(request.evidence, name, "" if value is UNSET else str(value))
    metadata_update(request, context)
    submit = context.optional_bool("submit")
    # Not given, it stays unset: the core then applies Stripe's default, true, to an update
    # that gives evidence (`remit.payments.disputes.submits`).
    if submit is not None:
        request.submit = submit
    reply = await call(deps.payments.UpdateDispute, request, context)
    return to_json(reply.dispute)


async def close(context: ApiContext, deps: Dependencies) -> JsonObject:
    reply = await call(
        deps.payments.CloseDispute, pb.CloseDisputeRequest(id=context.path["dispute"]), context
    )
    return to_json(reply.dispute)
