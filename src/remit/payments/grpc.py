"""PaymentsService over gRPC: protobuf in, use case, protobuf out. Nothing else."""

from typing import Any

import grpc

from remit.core.currency import SUPPORTED_CURRENCIES
from remit.core.errors import invalid
from remit.customers.grpc import CustomerRpcs
from remit.customers.service import CustomersService
from remit.grpcutil.metadata import call_context
from remit.grpcutil.protoconv import from_timestamp, timestamp
from remit.grpcutil.server import ServiceRegistration
from remit.payment_methods.grpc import PaymentMethodRpcs
from remit.payment_methods.service import PaymentMethodsService
from remit.payments.domain import (
    CaptureMethod,
    ConfirmationMethod,
    NewPaymentIntent,
    PaymentIntent,
    Status,
)
from remit.payments.service import CreatedRange, PaymentsService
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2 as pb
from remit_api.payments.v1 import payments_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]

_STATUS = {
    Status.REQUIRES_PAYMENT_METHOD: pb.PAYMENT_INTENT_STATUS_REQUIRES_PAYMENT_METHOD,
    Status.REQUIRES_CONFIRMATION: pb.PAYMENT_INTENT_STATUS_REQUIRES_CONFIRMATION,
    Status.REQUIRES_ACTION: pb.PAYMENT_INTENT_STATUS_REQUIRES_ACTION,
    Status.PROCESSING: pb.PAYMENT_INTENT_STATUS_PROCESSING,
    Status.REQUIRES_CAPTURE: pb.PAYMENT_INTENT_STATUS_REQUIRES_CAPTURE,
    Status.SUCCEEDED: pb.PAYMENT_INTENT_STATUS_SUCCEEDED,
    Status.CANCELED: pb.PAYMENT_INTENT_STATUS_CANCELED,
}
_CAPTURE = {
    CaptureMethod.AUTOMATIC: pb.PAYMENT_INTENT_CAPTURE_METHOD_AUTOMATIC,
    CaptureMethod.AUTOMATIC_ASYNC: pb.PAYMENT_INTENT_CAPTURE_METHOD_AUTOMATIC_ASYNC,
    CaptureMethod.MANUAL: pb.PAYMENT_INTENT_CAPTURE_METHOD_MANUAL,
}
_CAPTURE_FROM_PROTO = {value: key for key, value in _CAPTURE.items()}
_CONFIRMATION = {
    ConfirmationMethod.AUTOMATIC: pb.PAYMENT_INTENT_CONFIRMATION_METHOD_AUTOMATIC,
    ConfirmationMethod.MANUAL: pb.PAYMENT_INTENT_CONFIRMATION_METHOD_MANUAL,
}
_CONFIRMATION_FROM_PROTO = {value: key for key, value in _CONFIRMATION.items()}


def payment_intent_message(intent: PaymentIntent) -> pb.PaymentIntent:
    message = pb.PaymentIntent(
        id=intent.id,
        amount=intent.amount_minor,
        amount_capturable=intent.amount_capturable_minor,
        amount_received=intent.amount_received_minor,
        capture_method=_CAPTURE[intent.capture_method],
        client_secret=intent.client_secret,
        confirmation_method=_CONFIRMATION[intent.confirmation_method],
        created=timestamp(intent.created_at),
        currency=intent.currency,
        livemode=False,
        metadata=dict(intent.metadata),
        payment_method_types=["card"],
        status=_STATUS[intent.status],
    )
    for name, value in (
        ("customer", intent.customer_id),
        ("description", intent.description),
        ("latest_charge", intent.latest_charge_id),
        ("payment_method", intent.payment_method_id),
        ("receipt_email", intent.receipt_email),
        ("statement_descriptor", intent.statement_descriptor),
        ("statement_descriptor_suffix", intent.statement_descriptor_suffix),
    ):
        if value is not None:
            setattr(message, name, value)
    if intent.canceled_at is not None:
        message.canceled_at.CopyFrom(timestamp(intent.canceled_at))
    return message


def _optional(request: Any, name: str) -> Any:
    return getattr(request, name) if request.HasField(name) else None


def new_intent_from_request(request: pb.CreatePaymentIntentRequest) -> NewPaymentIntent:
    capture = CaptureMethod.AUTOMATIC
    if request.HasField("capture_method"):
        if request.capture_method not in _CAPTURE_FROM_PROTO:
            raise invalid("capture_method must be automatic, automatic_async or manual.",
                          "capture_method")  # fmt: skip
        capture = _CAPTURE_FROM_PROTO[request.capture_method]
    confirmation = ConfirmationMethod.AUTOMATIC
    if request.HasField("confirmation_method"):
        if request.confirmation_method not in _CONFIRMATION_FROM_PROTO:
            raise invalid("confirmation_method must be automatic or manual.",
                          "confirmation_method")  # fmt: skip
        confirmation = _CONFIRMATION_FROM_PROTO[request.confirmation_method]
    currency = request.currency.lower()
    if currency not in SUPPORTED_CURRENCIES:
        raise invalid(f"Invalid currency: {request.currency}.", "currency",
                      code="invalid_currency")  # fmt: skip
    return NewPaymentIntent(
        amount_minor=request.amount,
        currency=currency,
        capture_method=capture,
        confirmation_method=confirmation,
        metadata=dict(request.metadata),
        customer_id=_optional(request, "customer"),
        payment_method_id=_optional(request, "payment_method"),
        description=_optional(request, "description"),
        receipt_email=_optional(request, "receipt_email"),
        statement_descriptor=_optional(request, "statement_descriptor"),
        statement_descriptor_suffix=_optional(request, "statement_descriptor_suffix"),
    )


def created_range(created: common_pb2.CreatedFilter) -> CreatedRange:
    return CreatedRange(
        gt=from_timestamp(created.gt) if created.HasField("gt") else None,
        gte=from_timestamp(created.gte) if created.HasField("gte") else None,
        lt=from_timestamp(created.lt) if created.HasField("lt") else None,
        lte=from_timestamp(created.lte) if created.HasField("lte") else None,
    )


class PaymentsServicer(CustomerRpcs, PaymentMethodRpcs, payments_pb2_grpc.PaymentsServiceServicer):
    def __init__(
        self,
        service: PaymentsService,
        customers: CustomersService,
        payment_methods: PaymentMethodsService,
    ) -> None:
        self._service = service
        self._customers = customers
        self._payment_methods = payment_methods

    async def CreatePaymentIntent(
        self, request: pb.CreatePaymentIntentRequest, context: Context
    ) -> pb.CreatePaymentIntentResponse:
        call = call_context(context)
        intent = await self._service.create_payment_intent(
            call.account_id, new_intent_from_request(request)
        )
        return pb.CreatePaymentIntentResponse(payment_intent=payment_intent_message(intent))

    async def GetPaymentIntent(
        self, request: pb.GetPaymentIntentRequest, context: Context
    ) -> pb.GetPaymentIntentResponse:
        call = call_context(context)
        intent = await self._service.get_payment_intent(call.account_id, request.id)
        return pb.GetPaymentIntentResponse(payment_intent=payment_intent_message(intent))

    async def ListPaymentIntents(
        self, request: pb.ListPaymentIntentsRequest, context: Context
    ) -> pb.ListPaymentIntentsResponse:
        call = call_context(context)
        intents, has_more = await self._service.list_payment_intents(
            call.account_id,
            limit=request.limit or 10,
            starting_after=_optional(request, "starting_after"),
            ending_before=_optional(request, "ending_before"),
            created=created_range(request.created),
            customer_id=_optional(request, "customer"),
        )
        return pb.ListPaymentIntentsResponse(
            data=[payment_intent_message(intent) for intent in intents], has_more=has_more
        )


def payments_registration(
    service: PaymentsService, customers: CustomersService, payment_methods: PaymentMethodsService
) -> ServiceRegistration:
    servicer = PaymentsServicer(service, customers, payment_methods)
    return ServiceRegistration(
        full_name=pb.DESCRIPTOR.services_by_name["PaymentsService"].full_name,
        add_to_server=lambda server: payments_pb2_grpc.add_PaymentsServiceServicer_to_server(
            servicer, server
        ),
    )
