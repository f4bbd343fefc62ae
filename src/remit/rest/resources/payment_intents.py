"""`/v1/payment_intents`: Stripe's PaymentIntent endpoints."""

from remit.core.jsonview import JsonObject, enum_numbers, to_json
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.grpc_call import call
from remit.rest.listing import list_envelope, page_fields
from remit.rest.params import (
    Currency,
    Enum,
    Integer,
    Metadata,
    PageRequest,
    Schema,
    String,
    list_schema,
)
from remit_api.payments.v1 import payments_pb2 as pb

MAX_AMOUNT_MINOR = 99_999_999
PATH = "/v1/payment_intents"

_CAPTURE_METHODS = enum_numbers(pb.PaymentIntentCaptureMethod.DESCRIPTOR)
_CONFIRMATION_METHODS = enum_numbers(pb.PaymentIntentConfirmationMethod.DESCRIPTOR)

CREATE = Schema(
    {
        "amount": Integer(min=1, max=MAX_AMOUNT_MINOR),
        "currency": Currency(),
        "capture_method": Enum(*_CAPTURE_METHODS),
        "confirmation_method": Enum(*_CONFIRMATION_METHODS),
        "customer": String(),
        "description": String(max_length=1000),
        "metadata": Metadata(),
        "payment_method": String(),
        "receipt_email": String(max_length=800),
        "statement_descriptor": String(max_length=22),
        "statement_descriptor_suffix": String(max_length=22),
    },
    required={"amount", "currency"},
)
RETRIEVE = Schema({"client_secret": String()})
LIST = list_schema({"customer": String()})


_OPTIONAL_STRINGS = (
    "customer",
    "description",
    "payment_method",
    "receipt_email",
    "statement_descriptor",
    "statement_descriptor_suffix",
)


async def create(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.CreatePaymentIntentRequest(
        amount=context.int_param("amount"),
        currency=context.str_param("currency"),
        metadata=context.str_map("metadata"),
    )
    for name in _OPTIONAL_STRINGS:
        value = context.optional_str(name)
        if value is not None:
            setattr(request, name, value)
    capture_method = context.optional_str("capture_method")
    if capture_method is not None:
        request.capture_method = _CAPTURE_METHODS[capture_method]  # type: ignore[assignment]
    confirmation_method = context.optional_str("confirmation_method")
    if confirmation_method is not None:
        request.confirmation_method = _CONFIRMATION_METHODS[confirmation_method]  # type: ignore[assignment]
    reply = await call(deps.payments.CreatePaymentIntent, request, context)
    return to_json(reply.payment_intent)


async def retrieve(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.GetPaymentIntentRequest(id=context.path["intent"])
    client_secret = context.optional_str("client_secret")
    if client_secret is not None:
        request.client_secret = client_secret
    reply = await call(deps.payments.GetPaymentIntent, request, context)
    return to_json(reply.payment_intent)


async def list_intents(context: ApiContext, deps: Dependencies) -> JsonObject:
    page = PageRequest.from_params(context.params)
    request = pb.ListPaymentIntentsRequest(**page_fields(page))  # type: ignore[arg-type]
    customer = context.optional_str("customer")
    if customer is not None:
        request.customer = customer
    reply = await call(deps.payments.ListPaymentIntents, request, context)
    return list_envelope(reply.data, has_more=reply.has_more, url=PATH)
