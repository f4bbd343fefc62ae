"""`/v1/payment_methods`: Stripe's PaymentMethod endpoints (cards only)."""

from typing import Final

from remit.core.jsonview import JsonObject, to_json
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.errors import StripeError
from remit.rest.expand import register_resource
from remit.rest.grpc_call import call
from remit.rest.listing import list_envelope
from remit.rest.params import (
    UNSET,
    Enum,
    Metadata,
    Object,
    PageRequest,
    Schema,
    String,
    list_schema,
)
from remit.rest.resources.addresses import billing_details_field, billing_details_message
from remit.rest.resources.cards import card_field, expiry_field, full_expiry_year, tokenize
from remit.vault.test_cards import is_test_payment_method_id
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2 as pb

PATH: Final = "/v1/payment_methods"
_ALLOW_REDISPLAY = Enum("always", "limited", "unspecified")

CREATE = Schema(
    {
        "type": Enum("card"),
        "card": card_field(),
        "payment_method": String(),
        "billing_details": billing_details_field(),
        "metadata": Metadata(),
        "allow_redisplay": _ALLOW_REDISPLAY,
    },
    exclusive=[("card", "payment_method")],
)
RETRIEVE = Schema({})
UPDATE = Schema(
    {
        "billing_details": billing_details_field(unsettable=True),
        "metadata": Metadata(),
        "card": Object({"exp_month": expiry_field(), "exp_year": expiry_field()}),
        "allow_redisplay": _ALLOW_REDISPLAY,
    }
)
# The types a list may filter on (Stripe's enum at 2026-10-28.endive). remit keeps cards only,
# so a list of any other type is empty; a name outside the enum is refused.
LISTABLE_TYPES: Final = (
    "acss_debit", "affirm", "afterpay_clearpay", "alipay", "alma", "amazon_pay",
    "au_becs_debit", "bacs_debit", "bancontact", "billie", "bizum", "blik", "boleto", "card",
    "cashapp", "crypto", "custom", "customer_balance", "eps", "fpx", "giropay", "grabpay",
    "ideal", "kakao_pay", "klarna", "konbini", "kr_card", "link", "mb_way", "mobilepay",
    "multibanco", "naver_pay", "nz_bank_account", "oxxo", "p24", "pay_by_bank", "payco",
    "paynow", "paypal", "paypay", "payto", "pix", "promptpay", "revolut_pay", "samsung_pay",
    "satispay", "scalapay", "sepa_debit", "sequra", "sofort", "sunbit", "swish", "twint", "upi",
    "us_bank_account", "wechat_pay", "zip",
)  # fmt: skip
LIST = list_schema(
    {"customer": String(), "type": Enum(*LISTABLE_TYPES), "allow_redisplay": _ALLOW_REDISPLAY},
    created=False,
)
CUSTOMER_LIST = list_schema(
    {"type": Enum(*LISTABLE_TYPES), "allow_redisplay": _ALLOW_REDISPLAY}, created=False
)
ATTACH = Schema({"customer": String()}, required={"customer"})
DETACH = Schema({})


async def create(context: ApiContext, deps: Dependencies) -> JsonObject:
    if "type" not in context.params and "payment_method" not in context.params:
        raise StripeError.invalid_request(
            "Missing required param: type.", code="parameter_missing", param="type"
        )
    billing = billing_details_message(context.params.get("billing_details"))
    request = pb.CreatePaymentMethodRequest(
        type=pb.PAYMENT_METHOD_TYPE_CARD, metadata=context.new_metadata()
    )
    if billing is not None:
        request.billing_details.CopyFrom(billing)
    card = context.params.get("card")
    if isinstance(card, dict):
        request.card.CopyFrom(await card_input(context, deps, card, billing))
    payment_method = context.optional_str("payment_method")
    if payment_method is not None:
        request.payment_method = payment_method
    allow_redisplay = context.optional_str("allow_redisplay")
    if allow_redisplay is not None:
        request.allow_redisplay = allow_redisplay
    reply = await call(deps.payments.CreatePaymentMethod, request, context)
    return to_json(reply.payment_method)


async def card_input(
    context: ApiContext,
    deps: Dependencies,
    card: dict[str, object],
    billing: common_pb2.BillingDetails | None,
    *,
    param: str = "card",
) -> pb.CardInput:
    """A card as the core takes it: a token as it is, raw fields as the vault token of the card
    the vault has just stored for this request (the core never sees the number)."""
    if "token" in card:
        return pb.CardInput(token=str(card["token"]))
    tokenized = await tokenize(context, deps, card, billing, param=param)
    return pb.CardInput(vault_token=tokenized.vault_token)


async def retrieve(context: ApiContext, deps: Dependencies) -> JsonObject:
    return await fetch_payment_method(context, deps, context.path["payment_method"])


async def fetch_payment_method(context: ApiContext, deps: object, method_id: str) -> JsonObject:
    """A payment method by id, for `expand[]` (a payment intent's or charge's
    `payment_method`)."""
    assert isinstance(deps, Dependencies)
    request = pb.GetPaymentMethodRequest(id=method_id)
    reply = await call(deps.payments.GetPaymentMethod, request, context)
    return to_json(reply.payment_method)


register_resource(pb.PaymentMethod.DESCRIPTOR, fetch_payment_method)


def metadata_changes(context: ApiContext) -> dict[str, object]:
    """`metadata=` clears all, `metadata[k]=` removes k, other keys are set."""
    value = context.params.get("metadata")
    if value is UNSET:
        return {"clear_metadata": True}
    if not isinstance(value, dict):
        return {}
    return {
        "metadata": {k: v for k, v in value.items() if v != ""},
        "unset_metadata_keys": [k for k, v in value.items() if v == ""],
    }


async def update(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.UpdatePaymentMethodRequest(
        id=context.path["payment_method"],
        **metadata_changes(context),  # type: ignore[arg-type]
    )
    billing = billing_details_message(context.params.get("billing_details"))
    if billing is not None:
        request.billing_details.CopyFrom(billing)
    card = context.params.get("card")
    if isinstance(card, dict):
        exp_month, exp_year = card.get("exp_month"), card.get("exp_year")
        if isinstance(exp_month, int):
            request.card.exp_month = exp_month
        if isinstance(exp_year, int):
            request.card.exp_year = full_expiry_year(exp_year)
    allow_redisplay = context.optional_str("allow_redisplay")
    if allow_redisplay is not None:
        request.allow_redisplay = allow_redisplay
    reply = await call(deps.payments.UpdatePaymentMethod, request, context)
    return to_json(reply.payment_method)


async def _list(
    context: ApiContext, deps: Dependencies, customer: str | None, url: str
) -> JsonObject:
    page = PageRequest.from_params(context.params)
    request = pb.ListPaymentMethodsRequest(limit=page.limit)
    if page.starting_after is not None:
        request.starting_after = page.starting_after
    if page.ending_before is not None:
        request.ending_before = page.ending_before
    if customer is not None:
        request.customer = customer
    method_type = context.optional_str("type")
    if method_type is not None:
        request.type = pb.PAYMENT_METHOD_TYPE_CARD
    allow_redisplay = context.optional_str("allow_redisplay")
    if allow_redisplay is not None:
        request.allow_redisplay = allow_redisplay
    # Asked even for a type remit has none of, so an unknown customer or cursor is still a 404.
    reply = await call(deps.payments.ListPaymentMethods, request, context)
    if method_type not in (None, "card"):
        return list_envelope([], has_more=False, url=url)
    return list_envelope(reply.data, has_more=reply.has_more, url=url)


async def list_methods(context: ApiContext, deps: Dependencies) -> JsonObject:
    return await _list(context, deps, context.optional_str("customer"), PATH)


async def list_for_customer(context: ApiContext, deps: Dependencies) -> JsonObject:
    customer = context.path["customer"]
    return await _list(context, deps, customer, f"/v1/customers/{customer}/payment_methods")


async def retrieve_for_customer(context: ApiContext, deps: Dependencies) -> JsonObject:
    """`GET /v1/customers/{customer}/payment_methods/{payment_method}`: one of the customer's
    payment methods; any other payment method is missing here, whoever it belongs to."""
    customer_id, method_id = context.path["customer"], context.path["payment_method"]
    owner = await call(deps.payments.GetCustomer, pb.GetCustomerRequest(id=customer_id), context)
    if owner.HasField("deleted_customer"):
        raise StripeError.resource_missing("customer", customer_id, param="customer")
    if is_test_payment_method_id(method_id):
        # Belongs to no customer, and fetching it would make (write) a fresh payment method of
        # its test card on every call, only to answer that it is missing.
        raise StripeError.resource_missing("PaymentMethod", method_id, param="payment_method")
    method = await fetch_payment_method(context, deps, method_id)
    if method.get("customer") != customer_id:
        raise StripeError.resource_missing("PaymentMethod", method_id, param="payment_method")
    return method


async def attach(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.AttachPaymentMethodRequest(
        id=context.path["payment_method"], customer=context.str_param("customer")
    )
    reply = await call(deps.payments.AttachPaymentMethod, request, context)
    return to_json(reply.payment_method)


async def detach(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.DetachPaymentMethodRequest(id=context.path["payment_method"])
    reply = await call(deps.payments.DetachPaymentMethod, request, context)
    return to_json(reply.payment_method)
