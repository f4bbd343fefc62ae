"""The Customer RPCs of PaymentsService, as a mixin the PaymentsServicer inherits.

Protobuf to command, error to status, nothing else.
"""

from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict, ParseDict

from remit.core.errors import invalid
from remit.core.metadata import requested_metadata
from remit.customers.domain import Customer, CustomerFields, TaxExempt
from remit.customers.service import CustomersService
from remit.grpcutil.metadata import call_context
from remit.grpcutil.protoconv import filter_bound, timestamp
from remit.payments.keyed_rpc import client_keyed, reply, serialized
from remit.payments.requests import note_call
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2 as pb

Context = grpc.aio.ServicerContext[Any, Any]

_TAX_EXEMPT = {
    TaxExempt.NONE: pb.CUSTOMER_TAX_EXEMPT_NONE,
    TaxExempt.EXEMPT: pb.CUSTOMER_TAX_EXEMPT_EXEMPT,
    TaxExempt.REVERSE: pb.CUSTOMER_TAX_EXEMPT_REVERSE,
}
_TAX_EXEMPT_FROM_PROTO = {number: value for value, number in _TAX_EXEMPT.items()}
_TEXT = ("email", "name", "description", "phone", "business_name", "individual_name")
FIRST_INVOICE_SEQUENCE = 1


def as_dict(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def customer_message(customer: Customer) -> pb.Customer:
    message = pb.Customer(
        id=customer.id,
        balance=0,
        created=timestamp(customer.created_at),
        delinquent=False,
        livemode=False,
        metadata=dict(customer.metadata),
        preferred_locales=list(customer.preferred_locales),
        tax_exempt=_TAX_EXEMPT[customer.tax_exempt],
        invoice_settings=_invoice_settings(customer),
        # A customer's invoices are numbered from 1, and remit issues none: the next is
        # always the first.
        next_invoice_sequence=FIRST_INVOICE_SEQUENCE,
    )
    for name in _TEXT:
        value = getattr(customer, name)
        if value is not None:
            setattr(message, name, value)
    if customer.address is not None:
        message.address.CopyFrom(ParseDict(dict(customer.address), common_pb2.Address()))
    if customer.shipping is not None:
        message.shipping.CopyFrom(ParseDict(dict(customer.shipping), common_pb2.Shipping()))
    return message


def _invoice_settings(customer: Customer) -> pb.CustomerInvoiceSettings:
    """Always rendered (Stripe's customer always has the object); only the default is kept."""
    settings = pb.CustomerInvoiceSettings()
    if customer.default_payment_method_id is not None:
        settings.default_payment_method = customer.default_payment_method_id
    return settings


def _default_method(request: Any) -> str | None:
    """The default payment method a request names: None leaves it, "" clears it."""
    if not request.HasField("invoice_settings"):
        return None
    settings = request.invoice_settings
    if not settings.HasField("default_payment_method"):
        return None
    return str(settings.default_payment_method)


def _tax_exempt(request: Any) -> TaxExempt | None:
    if not request.HasField("tax_exempt"):
        return None
    if request.tax_exempt not in _TAX_EXEMPT_FROM_PROTO:
        raise invalid("tax_exempt must be none, exempt or reverse.", "tax_exempt")
    return _TAX_EXEMPT_FROM_PROTO[request.tax_exempt]


def _fields(request: Any, *, update: bool) -> CustomerFields:
    texts = {name: getattr(request, name) for name in _TEXT if request.HasField(name)}
    return CustomerFields(
        **texts,
        address=as_dict(request.address) if request.HasField("address") else None,
        clear_address=update and request.clear_address,
        shipping=as_dict(request.shipping) if request.HasField("shipping") else None,
        clear_shipping=update and request.clear_shipping,
        metadata=requested_metadata(request.metadata),
        unset_metadata_keys=tuple(request.unset_metadata_keys) if update else (),
        clear_metadata=update and request.clear_metadata,
        preferred_locales=tuple(request.preferred_locales),
        tax_exempt=_tax_exempt(request),
        default_payment_method=_default_method(request),
    )


class CustomerRpcs:
    """Mixed into PaymentsServicer, which sets `_customers`."""

    _customers: CustomersService

    async def CreateCustomer(
        self, request: pb.CreateCustomerRequest, context: Context
    ) -> pb.CreateCustomerResponse:
        call = call_context(context)
        note_call(call.request_id, call.idempotency_key)

        def answer(customer: Customer) -> pb.CreateCustomerResponse:
            return pb.CreateCustomerResponse(customer=customer_message(customer))

        result = await self._customers.create_once(
            call.account_id,
            client_keyed(context, "CreateCustomer", request, serialized(answer)),
            _fields(request, update=False),
            payment_method_id=request.payment_method
            if request.HasField("payment_method")
            else None,
        )
        return await reply(result, pb.CreateCustomerResponse, answer, context)

    async def GetCustomer(
        self, request: pb.GetCustomerRequest, context: Context
    ) -> pb.GetCustomerResponse:
        call = call_context(context)
        customer = await self._customers.get(call.account_id, request.id, include_deleted=True)
        if customer.deleted_at is not None:
            return pb.GetCustomerResponse(
                deleted_customer=pb.DeletedCustomer(id=customer.id, deleted=True)
            )
        return pb.GetCustomerResponse(customer=customer_message(customer))

    async def UpdateCustomer(
        self, request: pb.UpdateCustomerRequest, context: Context
    ) -> pb.UpdateCustomerResponse:
        call = call_context(context)
        note_call(call.request_id, call.idempotency_key)

        def answer(customer: Customer) -> pb.UpdateCustomerResponse:
            return pb.UpdateCustomerResponse(customer=customer_message(customer))

        result = await self._customers.update_once(
            call.account_id,
            client_keyed(context, "UpdateCustomer", request, serialized(answer)),
            request.id,
            _fields(request, update=True),
        )
        return await reply(result, pb.UpdateCustomerResponse, answer, context)

    async def DeleteCustomer(
        self, request: pb.DeleteCustomerRequest, context: Context
    ) -> pb.DeleteCustomerResponse:
        call = call_context(context)
        note_call(call.request_id, call.idempotency_key)
        customer = await self._customers.delete(call.account_id, request.id)
        return pb.DeleteCustomerResponse(
            deleted_customer=pb.DeletedCustomer(id=customer.id, deleted=True)
        )

    async def ListCustomers(
        self, request: pb.ListCustomersRequest, context: Context
    ) -> pb.ListCustomersResponse:
        call = call_context(context)
        customers, has_more = await self._customers.list(
            call.account_id,
            limit=request.limit or 10,
            starting_after=request.starting_after if request.HasField("starting_after") else None,
            ending_before=request.ending_before if request.HasField("ending_before") else None,
            email=request.email if request.HasField("email") else None,
            created=(
                filter_bound(request.created, "gt"),
                filter_bound(request.created, "gte"),
                filter_bound(request.created, "lt"),
                filter_bound(request.created, "lte"),
            ),
        )
        return pb.ListCustomersResponse(
            data=[customer_message(customer) for customer in customers], has_more=has_more
        )
