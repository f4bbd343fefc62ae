"""`/v1/customers`: Stripe's Customer endpoints (create, retrieve, update, delete, list)."""

from typing import Final

from remit.core.errors import ErrorKind, RemitError
from remit.core.jsonview import JsonObject, enum_numbers, to_json
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.expand import Includer, register_included, register_resource, register_unfilled
from remit.rest.grpc_call import call
from remit.rest.listing import list_envelope, page_fields
from remit.rest.params import (
    UNSET,
    Email,
    Enum,
    Field,
    Metadata,
    Object,
    PageRequest,
    Schema,
    String,
    StringList,
    list_schema,
)
from remit.rest.resources.addresses import (
    address_field,
    address_message,
    shipping_field,
    shipping_message,
)
from remit.rest.resources.payment_methods import metadata_changes
from remit_api.payments.v1 import payments_pb2 as pb
from versions.v2020_08_27 import CUSTOMER_LISTS

PATH: Final = "/v1/customers"
_TAX_EXEMPT = enum_numbers(pb.CustomerTaxExempt.DESCRIPTOR)
_TEXT: Final = ("email", "name", "description", "phone", "business_name", "individual_name")


def _fields(*, unsettable: bool) -> dict[str, Field[object]]:
    return {
        "email": Email(max_length=512, unsettable=unsettable),
        "name": String(max_length=256, unsettable=unsettable),
        "description": String(unsettable=unsettable),
        "phone": String(max_length=20, unsettable=unsettable),
        "business_name": String(max_length=150, unsettable=unsettable),
        "individual_name": String(max_length=150, unsettable=unsettable),
        "address": address_field(unsettable=unsettable),
        "shipping": shipping_field(unsettable=unsettable),
        "metadata": Metadata(),
        "preferred_locales": StringList(max_items=10),
        "tax_exempt": Enum(*_TAX_EXEMPT, unsettable=unsettable),
        # Of Stripe's invoice settings only the default payment method: the others are
        # refused as unknown parameters.
        "invoice_settings": Object({"default_payment_method": String(unsettable=True)}),
    }


CREATE = Schema({**_fields(unsettable=False), "payment_method": String()})
UPDATE = Schema(_fields(unsettable=True))
RETRIEVE = Schema({})
DELETE = Schema({})
LIST = list_schema({"email": String(max_length=512)})


def _fill(
    request: pb.CreateCustomerRequest | pb.UpdateCustomerRequest, context: ApiContext
) -> None:
    params = context.params
    for name in _TEXT:
        value = params.get(name)
        if value is UNSET:
            setattr(request, name, "")
        elif isinstance(value, str):
            setattr(request, name, value)
    address = params.get("address")
    if isinstance(address, dict):
        request.address.CopyFrom(address_message(address))
    shipping = params.get("shipping")
    if isinstance(shipping, dict):
        request.shipping.CopyFrom(shipping_message(shipping))
    request.preferred_locales.extend(context.str_list("preferred_locales"))
    tax_exempt = params.get("tax_exempt")
    if isinstance(tax_exempt, str):
        request.tax_exempt = _TAX_EXEMPT[tax_exempt]  # type: ignore[assignment]
    elif tax_exempt is UNSET:
        request.tax_exempt = pb.CUSTOMER_TAX_EXEMPT_NONE
    invoice_settings = params.get("invoice_settings")
    if isinstance(invoice_settings, dict):
        request.invoice_settings.CopyFrom(_invoice_settings_input(invoice_settings))


def _invoice_settings_input(values: dict[str, object]) -> pb.CustomerInvoiceSettingsInput:
    settings = pb.CustomerInvoiceSettingsInput()
    default = values.get("default_payment_method")
    if default is UNSET:
        settings.default_payment_method = ""
    elif isinstance(default, str):
        settings.default_payment_method = default
    return settings


async def create(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.CreateCustomerRequest(metadata=context.new_metadata())
    _fill(request, context)
    payment_method = context.optional_str("payment_method")
    if payment_method is not None:
        request.payment_method = payment_method
    reply = await call(deps.payments.CreateCustomer, request, context)
    return to_json(reply.customer)


async def retrieve(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.GetCustomerRequest(id=context.path["customer"])
    reply = await call(deps.payments.GetCustomer, request, context)
    return _customer_or_stub(reply)


def _customer_or_stub(reply: pb.GetCustomerResponse) -> JsonObject:
    """Stripe answers a deleted customer with `{id, object: "customer", deleted: true}`."""
    if reply.HasField("deleted_customer"):
        return to_json(reply.deleted_customer)
    return to_json(reply.customer)


async def fetch_customer(context: ApiContext, deps: object, customer_id: str) -> JsonObject:
    """A customer by id, for `expand[]` (a payment intent's or charge's `customer`). A deleted
    customer expands to Stripe's deleted stub, so the object that names it still renders."""
    assert isinstance(deps, Dependencies)
    try:
        reply = await call(
            deps.payments.GetCustomer, pb.GetCustomerRequest(id=customer_id), context
        )
    except RemitError as error:
        if error.kind is not ErrorKind.NOT_FOUND:
            raise
        return {"id": customer_id, "object": "customer", "deleted": True}
    return _customer_or_stub(reply)


def _no_list(name: str) -> Includer:
    """A customer's `name` list (`sources`, `subscriptions`, `tax_ids`), which Stripe shows only
    when expanded: remit has no sources, subscriptions or tax ids, so it is empty, as every
    customer's is at the versions that show the lists unasked (before 2020-08-27). Expanded, it
    is a plain list envelope, without the `total_count` the lists shown unasked had: Stripe's
    spec (ApmsSourcesSourceList, SubscriptionList, TaxIDsList) gives it none, as it gives none
    to a charge's expanded `refunds`."""

    async def include(_context: ApiContext, _deps: object, customer: JsonObject) -> JsonObject:
        customer_id = customer.get("id")
        assert isinstance(customer_id, str)
        return list_envelope([], has_more=False, url=f"{PATH}/{customer_id}/{name}")

    return include


register_resource(pb.Customer.DESCRIPTOR, fetch_customer)
for _list in CUSTOMER_LISTS:
    register_included("customer", _list, _no_list(_list))
# A legacy card source (before 2015-02-18 `default_card`) and a Billing test clock: remit has
# neither. `tax` and `cash_balance`, which Stripe too shows only when expanded, stay refused:
# remit has no Stripe Tax settings nor cash balance to show, and an object made up for them
# would claim settings the account never made.
register_unfilled("customer", "default_source", "default_card", "test_clock")


async def update(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.UpdateCustomerRequest(id=context.path["customer"], **metadata_changes(context))  # type: ignore[arg-type]
    _fill(request, context)
    request.clear_address = context.params.get("address") is UNSET
    request.clear_shipping = context.params.get("shipping") is UNSET
    reply = await call(deps.payments.UpdateCustomer, request, context)
    return to_json(reply.customer)


async def delete(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.DeleteCustomerRequest(id=context.path["customer"])
    reply = await call(deps.payments.DeleteCustomer, request, context)
    return to_json(reply.deleted_customer)


async def list_customers(context: ApiContext, deps: Dependencies) -> JsonObject:
    page = PageRequest.from_params(context.params)
    request = pb.ListCustomersRequest(**page_fields(page))  # type: ignore[arg-type]
    email = context.optional_str("email")
    if email is not None:
        request.email = email
    reply = await call(deps.payments.ListCustomers, request, context)
    return list_envelope(reply.data, has_more=reply.has_more, url=PATH)
