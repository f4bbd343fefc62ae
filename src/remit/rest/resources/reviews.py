"""`/v1/reviews`: Stripe's Review endpoints, plus remit's `POST /v1/reviews/{id}/close`
(refuse the payment: refund it, refund it as fraud, or cancel it when uncaptured)."""

from remit.core.jsonview import JsonObject, to_json
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.expand import register_resource
from remit.rest.grpc_call import call
from remit.rest.listing import list_envelope, page_fields
from remit.rest.params import Boolean, Enum, PageRequest, Schema, list_schema
from remit_api.payments.v1 import payments_pb2 as pb

PATH = "/v1/reviews"
_CLOSE_ACTIONS = {
    "refund": pb.CLOSE_REVIEW_ACTION_REFUND,
    "refund_as_fraud": pb.CLOSE_REVIEW_ACTION_REFUND_AS_FRAUD,
    "cancel": pb.CLOSE_REVIEW_ACTION_CANCEL,
}

RETRIEVE = Schema({})
APPROVE = Schema({})
CLOSE = Schema({"action": Enum(*_CLOSE_ACTIONS)}, required={"action"})
LIST = list_schema({"open": Boolean()})


async def fetch_review(context: ApiContext, deps: object, review_id: str) -> JsonObject:
    """A review by id, for `expand[]` (a payment intent's or charge's `review`)."""
    assert isinstance(deps, Dependencies)
    reply = await call(deps.payments.GetReview, pb.GetReviewRequest(id=review_id), context)
    return to_json(reply.review)


register_resource(pb.Review.DESCRIPTOR, fetch_review, id_prefix="rev")


async def retrieve(context: ApiContext, deps: Dependencies) -> JsonObject:
    return await fetch_review(context, deps, context.path["review"])


async def approve(context: ApiContext, deps: Dependencies) -> JsonObject:
    reply = await call(
        deps.payments.ApproveReview, pb.ApproveReviewRequest(id=context.path["review"]), context
    )
    return to_json(reply.review)


async def close(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.CloseReviewRequest(
        id=context.path["review"], action=_CLOSE_ACTIONS[context.str_param("action")]
    )
    reply = await call(deps.payments.CloseReview, request, context)
    return to_json(reply.review)


async def list_reviews(context: ApiContext, deps: Dependencies) -> JsonObject:
    page = PageRequest.from_params(context.params)
    request = pb.ListReviewsRequest(**page_fields(page))  # type: ignore[arg-type]
    is_open = context.optional_bool("open")
    if is_open is not None:
        request.open = is_open
    reply = await call(deps.payments.ListReviews, request, context)
    return list_envelope(reply.data, has_more=reply.has_more, url=PATH)
