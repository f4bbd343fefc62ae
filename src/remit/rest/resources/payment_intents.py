"""`/v1/payment_intents`: Stripe's PaymentIntent endpoints."""

from remit.accounts.domain import KeyKind
from remit.core import confirm_rules
from remit.core.jsonview import JsonObject, enum_numbers, to_json
from remit.core.return_urls import refuse_invalid_return_url
from remit.rest.amounts import amount_field
from remit.rest.client_secrets import refuse_a_mismatched_client_secret
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.errors import StripeError
from remit.rest.expand import register_resource, register_unfilled
from remit.rest.grpc_call import call
from remit.rest.listing import list_envelope, page_fields
from remit.rest.params import (
    UNSET,
    Array,
    Boolean,
    BooleanOrEnum,
    Currency,
    Email,
    Enum,
    Metadata,
    NamedEnum,
    Object,
    PageRequest,
    Schema,
    StatementDescriptor,
    String,
    StringList,
    list_schema,
)
from remit.rest.resources.addresses import (
    billing_details_field,
    billing_details_message,
    put_shipping,
    shipping_field,
    shipping_message,
)
from remit.rest.resources.cards import card_field
from remit.rest.resources.payment_methods import card_input
from remit.rest.resources.refunds import metadata_update
from remit_api.payments.v1 import payments_pb2 as pb

PATH = "/v1/payment_intents"

_CAPTURE_METHODS = enum_numbers(pb.PaymentIntentCaptureMethod.DESCRIPTOR)
_CONFIRMATION_METHODS = enum_numbers(pb.PaymentIntentConfirmationMethod.DESCRIPTOR)
_SETUP_FUTURE_USAGE = enum_numbers(pb.SetupFutureUsage.DESCRIPTOR)
_CANCELLATION_REASONS = {
    name: number
    for name, number in enum_numbers(pb.PaymentIntentCancellationReason.DESCRIPTOR).items()
    if name in {"duplicate", "fraudulent", "requested_by_customer", "abandoned"}
}
_AMOUNT = amount_field()
_REQUEST_THREE_D_SECURE = {
    name: number
    for name, number in enum_numbers(pb.RequestThreeDSecure.DESCRIPTOR).items()
    if name != "unspecified"
}
_PAYMENT_METHOD_OPTIONS = Object(
    {"card": Object({"request_three_d_secure": Enum(*_REQUEST_THREE_D_SECURE)})}
)
# Makes a PaymentMethod for the intent (cards only), as POST /v1/payment_methods does.
_PAYMENT_METHOD_DATA = Object(
    {
        "type": Enum("card"),
        "card": card_field(),
        "billing_details": billing_details_field(),
        "metadata": Metadata(),
    },
    required={"type"},
)
# Either names the payment method to pay with, or gives the card to make one of.
_ONE_PAYMENT_METHOD = ("payment_method", "payment_method_data")
# Stripe's payment method types, the values `allowed_payment_method_types` and
# `excluded_payment_method_types` take: the OpenAPI document's enum of PaymentMethod types
# (2023-08-16, which predates these parameters) with the types added since, as stripe-python
# 16.1.0 (2026-10-28.endive) lists them for these fields. A name outside them is refused, as
# Stripe's enum check does; one remit does not process is the core's to judge.
PAYMENT_METHOD_TYPES = (
    "acss_debit", "affirm", "afterpay_clearpay", "alipay", "alma", "amazon_pay",
    "au_becs_debit", "bacs_debit", "bancontact", "billie", "bizum", "blik", "boleto", "card",
    "cashapp", "crypto", "customer_balance", "eps", "fpx", "giropay", "grabpay", "ideal",
    "kakao_pay", "klarna", "konbini", "kr_card", "link", "mb_way", "mobilepay", "multibanco",
    "naver_pay", "nz_bank_account", "oxxo", "p24", "pay_by_bank", "payco", "paynow", "paypal",
    "paypay", "payto", "pix", "promptpay", "revolut_pay", "samsung_pay", "satispay", "scalapay",
    "sepa_debit", "sequra", "sofort", "sunbit", "swish", "twint", "upi", "us_bank_account",
    "wechat_pay", "zip",
)  # fmt: skip
# The merchant's restriction of payment method types (dahlia+), on create, update and confirm.
_PAYMENT_METHOD_TYPE_LISTS = {
    "allowed_payment_method_types": Array(NamedEnum(*PAYMENT_METHOD_TYPES)),
    "excluded_payment_method_types": Array(NamedEnum(*PAYMENT_METHOD_TYPES)),
}
# On update and confirm an empty value (`excluded_payment_method_types=`) lifts the list.
_CLEARABLE_PAYMENT_METHOD_TYPE_LISTS = {
    name: Array(NamedEnum(*PAYMENT_METHOD_TYPES), unsettable=True)
    for name in _PAYMENT_METHOD_TYPE_LISTS
}
_ALLOW_REDIRECTS = enum_numbers(pb.AllowRedirects.DESCRIPTOR)
_DESCRIPTORS = {
    "statement_descriptor": StatementDescriptor(),
    "statement_descriptor_suffix": StatementDescriptor(needs_letter=False),
}
# `true`, or how the customer is away: both kinds are off-session alike to remit's network.
_OFF_SESSION = BooleanOrEnum("one_off", "recurring")

CREATE = Schema(
    {
        "amount": _AMOUNT,
        "currency": Currency(),
        "automatic_payment_methods": Object(
            {"enabled": Boolean(), "allow_redirects": Enum(*_ALLOW_REDIRECTS)},
            required={"enabled"},
        ),
        "capture_method": Enum(*_CAPTURE_METHODS),
        "confirm": Boolean(),
        "confirmation_method": Enum(*_CONFIRMATION_METHODS),
        "customer": String(),
        "description": String(max_length=1000),
        "error_on_requires_action": Boolean(),
        "metadata": Metadata(),
        "off_session": _OFF_SESSION,
        "payment_method": String(),
        "payment_method_data": _PAYMENT_METHOD_DATA,
        "payment_method_options": _PAYMENT_METHOD_OPTIONS,
        "payment_method_types": StringList(),
        "receipt_email": Email(max_length=800),
        "return_url": String(),
        "setup_future_usage": Enum(*_SETUP_FUTURE_USAGE),
        "shipping": shipping_field(),
        "use_stripe_sdk": Boolean(),
        **_DESCRIPTORS,
        **_PAYMENT_METHOD_TYPE_LISTS,
    },
    required={"amount", "currency"},
    exclusive=[_ONE_PAYMENT_METHOD],
)
RETRIEVE = Schema({"client_secret": String()})
UPDATE = Schema(
    {
        "amount": _AMOUNT,
        "currency": Currency(),
        "capture_method": Enum(*_CAPTURE_METHODS),
        "customer": String(unsettable=True),
        "description": String(max_length=1000, unsettable=True),
        "metadata": Metadata(),
        "payment_method": String(),
        "payment_method_types": StringList(),
        "receipt_email": Email(max_length=800, unsettable=True),
        "setup_future_usage": Enum(*_SETUP_FUTURE_USAGE, unsettable=True),
        "shipping": shipping_field(unsettable=True),
        "payment_method_options": _PAYMENT_METHOD_OPTIONS,
        "statement_descriptor": StatementDescriptor(unsettable=True),
        "statement_descriptor_suffix": StatementDescriptor(needs_letter=False, unsettable=True),
        **_CLEARABLE_PAYMENT_METHOD_TYPE_LISTS,
    }
)
CONFIRM = Schema(
    {
        "capture_method": Enum(*_CAPTURE_METHODS),
        "client_secret": String(),
        "error_on_requires_action": Boolean(),
        "off_session": _OFF_SESSION,
        "payment_method": String(),
        "payment_method_data": _PAYMENT_METHOD_DATA,
        "payment_method_options": _PAYMENT_METHOD_OPTIONS,
        "payment_method_types": StringList(),
        "receipt_email": Email(max_length=800, unsettable=True),
        "return_url": String(),
        "setup_future_usage": Enum(*_SETUP_FUTURE_USAGE, unsettable=True),
        "shipping": shipping_field(unsettable=True),
        "use_stripe_sdk": Boolean(),
        **_CLEARABLE_PAYMENT_METHOD_TYPE_LISTS,
    },
    exclusive=[_ONE_PAYMENT_METHOD],
)
CAPTURE = Schema(
    {
        # Past the most a payment may be: amount_too_large, as the core says it.
        "amount_to_capture": amount_field(),
        "final_capture": Boolean(),
        "metadata": Metadata(),
        **_DESCRIPTORS,
    }
)
CANCEL = Schema({"cancellation_reason": Enum(*_CANCELLATION_REASONS)})
LIST = list_schema({"customer": String()})


def _check_payment_method_types(context: ApiContext) -> None:
    """Accounts on versions before endive may still write `payment_method_types` (from endive
    on the versioning layer refuses it); cards are the only type remit processes."""
    types = context.str_list("payment_method_types")
    unsupported = [t for t in types if t != "card"]
    if unsupported:
        raise StripeError.invalid_request(
            f"The payment method type {unsupported[0]!r} is not supported; remit processes "
            "cards only.",
            code="parameter_invalid",
            param="payment_method_types",
        )


def _set_payment_method_types(
    request: pb.CreatePaymentIntentRequest
    | pb.UpdatePaymentIntentRequest
    | pb.ConfirmPaymentIntentRequest,
    context: ApiContext,
) -> None:
    """`payment_method_types` (checked by `_check_payment_method_types`) and the allowed and
    excluded lists, which the core validates against what remit can process. An empty allowed
    list (a JSON body's []) would allow nothing at all, so it is refused here; an empty value
    (`allowed_payment_method_types=`) on update or confirm lifts the list instead."""
    if context.params.get("allowed_payment_method_types") == []:
        raise StripeError.invalid_request(
            "allowed_payment_method_types must name at least one payment method type.",
            code="parameter_invalid",
            param="allowed_payment_method_types",
        )
    request.payment_method_types.extend(context.str_list("payment_method_types"))
    request.allowed_payment_method_types.extend(context.str_list("allowed_payment_method_types"))
    request.excluded_payment_method_types.extend(context.str_list("excluded_payment_method_types"))
    if not isinstance(request, pb.CreatePaymentIntentRequest):
        # `allowed_payment_method_types=` and `excluded_payment_method_types=` lift the lists.
        cleared = {name for name in _CLEARABLE_PAYMENT_METHOD_TYPE_LISTS
                   if context.params.get(name) is UNSET}  # fmt: skip
        request.clear_allowed_payment_method_types = "allowed_payment_method_types" in cleared
        request.clear_excluded_payment_method_types = "excluded_payment_method_types" in cleared


def _set_automatic_payment_methods(
    request: pb.CreatePaymentIntentRequest, context: ApiContext
) -> None:
    """`automatic_payment_methods` as given; without it or `payment_method_types`, automatic
    payment methods are on, Stripe's default since 2023-08-16 (older versions get
    `payment_method_types=[card]` from their version change, the default they had)."""
    given = context.params.get("automatic_payment_methods")
    if not isinstance(given, dict):
        if "payment_method_types" not in context.params:
            request.automatic_payment_methods.enabled = True
        return
    request.automatic_payment_methods.enabled = given.get("enabled") is True
    redirects = given.get("allow_redirects")
    if isinstance(redirects, str):
        request.automatic_payment_methods.allow_redirects = _ALLOW_REDIRECTS[redirects]  # type: ignore[assignment]


def _refuse_before_storing_a_card(
    request: pb.CreatePaymentIntentRequest, context: ApiContext
) -> None:
    """A create that the core would refuse for what the request alone shows (what only a
    confirmation takes without confirm=true; confirmed at once, no `return_url` where the
    customer may be redirected, `error_on_requires_action` with automatic payment methods) is
    refused here when it gives a card (`payment_method_data`): before the card is stored at
    the vault, so a refused request never stores one."""
    if not isinstance(context.params.get("payment_method_data"), dict):
        return
    given = {
        name
        for name in confirm_rules.CONFIRM_ONLY_PARAMS
        if context.params.get(name) not in (None, False, "")
    }
    confirm_rules.refuse_confirm_only_params(confirm=request.confirm, given=given)
    if not request.confirm:
        return
    refuse_invalid_return_url(request.return_url or None)
    automatic = (
        request.HasField("automatic_payment_methods") and request.automatic_payment_methods.enabled
    )
    never = request.automatic_payment_methods.allow_redirects == pb.ALLOW_REDIRECTS_NEVER
    confirm_rules.require_return_url(
        redirects=confirm_rules.may_redirect(
            automatic=automatic, allow_redirects="never" if never else None
        ),
        return_url=request.return_url or None,
        kept_return_url=None,
        off_session=request.off_session,
    )
    confirm_rules.refuse_error_on_requires_action(
        automatic=automatic, error_on_requires_action=request.error_on_requires_action
    )


def _set_card_options(
    request: pb.CreatePaymentIntentRequest
    | pb.UpdatePaymentIntentRequest
    | pb.ConfirmPaymentIntentRequest,
    context: ApiContext,
) -> None:
    """payment_method_options[card][request_three_d_secure]: kept on the intent (create,
    update) and asked for by every confirmation that names none (a confirm's own wins)."""
    options = context.params.get("payment_method_options")
    card = options.get("card") if isinstance(options, dict) else None
    chosen = card.get("request_three_d_secure") if isinstance(card, dict) else None
    if isinstance(chosen, str):
        request.payment_method_options.card.request_three_d_secure = _REQUEST_THREE_D_SECURE[  # type: ignore[assignment]
            chosen
        ]


def _set_setup_future_usage(
    request: pb.UpdatePaymentIntentRequest | pb.ConfirmPaymentIntentRequest, context: ApiContext
) -> None:
    """An update's or a confirmation's `setup_future_usage`: a value replaces the intent's,
    `setup_future_usage=` clears it (Stripe's SDK types both with `Literal[""]`)."""
    if "setup_future_usage" not in context.params:
        return
    usage = context.optional_str("setup_future_usage")
    if usage:
        request.setup_future_usage = _SETUP_FUTURE_USAGE[usage]  # type: ignore[assignment]
    else:  # `setup_future_usage=` clears it
        request.clear_setup_future_usage = True


async def _set_payment_method_data(
    request: pb.CreatePaymentIntentRequest | pb.ConfirmPaymentIntentRequest,
    context: ApiContext,
    deps: Dependencies,
) -> None:
    """`payment_method_data`: the card the core makes the intent's new payment method of. Set
    last, once nothing else in the request can be refused here: raw card fields are stored at
    the vault first, and only the vault token goes on to the core."""
    data = context.params.get("payment_method_data")
    if not isinstance(data, dict):
        return
    card = data.get("card")
    if not isinstance(card, dict):
        raise StripeError.invalid_request(
            "Missing required param: payment_method_data[card].",
            code="parameter_missing",
            param="payment_method_data[card]",
        )
    message = request.payment_method_data
    message.type = pb.PAYMENT_METHOD_TYPE_CARD
    metadata = data.get("metadata")
    if isinstance(metadata, dict):
        message.metadata.update({str(k): str(v) for k, v in metadata.items()})
    billing = billing_details_message(data.get("billing_details"))
    if billing is not None:
        message.billing_details.CopyFrom(billing)
    message.card.CopyFrom(
        await card_input(context, deps, card, billing, param="payment_method_data[card]")
    )


def _set_confirmation_flags(
    request: pb.CreatePaymentIntentRequest | pb.ConfirmPaymentIntentRequest, context: ApiContext
) -> None:
    """`off_session` (`true`, `one_off` or `recurring`: off-session all the same),
    `error_on_requires_action` and `use_stripe_sdk`, as given."""
    off_session = context.params.get("off_session")
    if off_session is not None:
        request.off_session = off_session is not False
    for name in ("error_on_requires_action", "use_stripe_sdk"):
        flag = context.optional_bool(name)
        if flag is not None:
            setattr(request, name, flag)


def _refuse_multicapture(context: ApiContext) -> None:
    if context.optional_bool("final_capture") is False:
        raise StripeError.invalid_request(
            "Capturing in several parts (final_capture=false) is not supported.",
            code="parameter_invalid",
            param="final_capture",
        )


async def fetch_intent(context: ApiContext, deps: object, intent_id: str) -> JsonObject:
    assert isinstance(deps, Dependencies)
    request = pb.GetPaymentIntentRequest(id=intent_id)
    reply = await call(deps.payments.GetPaymentIntent, request, context)
    return to_json(reply.payment_intent)


register_resource(pb.PaymentIntent.DESCRIPTOR, fetch_intent)
# Connect's application and account, and (before 2025-03-31) the invoice: remit has none.
register_unfilled("payment_intent", "application", "on_behalf_of", "invoice")


def _set_strings(message: object, context: ApiContext, names: tuple[str, ...]) -> None:
    for name in names:
        value = context.optional_str(name)
        if value is not None:
            setattr(message, name, value)


async def create(context: ApiContext, deps: Dependencies) -> JsonObject:
    _check_payment_method_types(context)
    request = pb.CreatePaymentIntentRequest(
        amount=context.int_param("amount"),
        currency=context.str_param("currency"),
        metadata=context.new_metadata(),
    )
    _set_strings(
        request,
        context,
        (
            "customer",
            "description",
            "payment_method",
            "receipt_email",
            "return_url",
            "statement_descriptor",
            "statement_descriptor_suffix",
        ),
    )
    for name, values in (
        ("capture_method", _CAPTURE_METHODS),
        ("confirmation_method", _CONFIRMATION_METHODS),
        ("setup_future_usage", _SETUP_FUTURE_USAGE),
    ):
        chosen = context.optional_str(name)
        if chosen is not None:
            setattr(request, name, values[chosen])
    confirm = context.optional_bool("confirm")
    if confirm is not None:
        request.confirm = confirm
    _set_confirmation_flags(request, context)
    shipping = context.params.get("shipping")
    if isinstance(shipping, dict):
        request.shipping.CopyFrom(shipping_message(shipping))
    _set_payment_method_types(request, context)
    _set_automatic_payment_methods(request, context)
    _set_card_options(request, context)
    _refuse_before_storing_a_card(request, context)
    await _set_payment_method_data(request, context, deps)
    reply = await call(deps.payments.CreatePaymentIntent, request, context)
    return to_json(reply.payment_intent)


async def retrieve(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.GetPaymentIntentRequest(id=context.path["intent"])
    client_secret = context.optional_str("client_secret")
    publishable = context.principal.key_kind is KeyKind.PUBLISHABLE
    if client_secret is not None and publishable:
        # The core checks a publishable key's secret, answering a mismatch with a 404.
        request.client_secret = client_secret
    reply = await call(deps.payments.GetPaymentIntent, request, context)
    if client_secret is not None and not publishable:
        refuse_a_mismatched_client_secret(client_secret, reply.payment_intent)
    return to_json(reply.payment_intent)


async def _check_a_secret_keys_client_secret(context: ApiContext, deps: Dependencies) -> None:
    """A client_secret a secret key sends to confirm must be the intent's (a publishable key's
    goes to the core, which checks it). Checked before anything is stored or forwarded under
    the request's idempotency key, so the refusal is not replayed to a corrected retry."""
    presented = context.optional_str("client_secret")
    if presented is None or context.principal.key_kind is KeyKind.PUBLISHABLE:
        return
    request = pb.GetPaymentIntentRequest(id=context.path["intent"])
    reply = await call(deps.payments.GetPaymentIntent, request, context)
    refuse_a_mismatched_client_secret(presented, reply.payment_intent)


async def update(context: ApiContext, deps: Dependencies) -> JsonObject:
    _check_payment_method_types(context)
    request = pb.UpdatePaymentIntentRequest(id=context.path["intent"])
    amount = context.optional_int("amount")
    if amount is not None:
        request.amount = amount
    for name in ("currency", "payment_method"):
        value = context.optional_str(name)
        if value is not None:
            setattr(request, name, value)
    for name in (
        "customer",
        "description",
        "receipt_email",
        "statement_descriptor",
        "statement_descriptor_suffix",
    ):
        if name in context.params:
            # An unset parameter (`description=`) clears the field: sent as "".
            setattr(request, name, context.optional_str(name) or "")
    capture_method = context.optional_str("capture_method")
    if capture_method is not None:
        request.capture_method = _CAPTURE_METHODS[capture_method]  # type: ignore[assignment]
    _set_setup_future_usage(request, context)
    _set_payment_method_types(request, context)
    _set_card_options(request, context)
    put_shipping(request, context.params)
    metadata_update(request, context)
    reply = await call(deps.payments.UpdatePaymentIntent, request, context)
    return to_json(reply.payment_intent)


async def confirm(context: ApiContext, deps: Dependencies) -> JsonObject:
    _check_payment_method_types(context)
    await _check_a_secret_keys_client_secret(context, deps)
    request = pb.ConfirmPaymentIntentRequest(id=context.path["intent"])
    _set_strings(request, context, ("payment_method", "return_url"))
    if context.principal.key_kind is KeyKind.PUBLISHABLE:
        # Tells the core a payment page is confirming (a secret key's was checked above).
        _set_strings(request, context, ("client_secret",))
    if "receipt_email" in context.params:
        # `receipt_email=` clears it: sent as "".
        request.receipt_email = context.optional_str("receipt_email") or ""
    capture_method = context.optional_str("capture_method")
    if capture_method is not None:
        request.capture_method = _CAPTURE_METHODS[capture_method]  # type: ignore[assignment]
    _set_setup_future_usage(request, context)
    _set_confirmation_flags(request, context)
    _set_payment_method_types(request, context)
    put_shipping(request, context.params)
    _set_card_options(request, context)
    await _set_payment_method_data(request, context, deps)
    reply = await call(deps.payments.ConfirmPaymentIntent, request, context)
    return to_json(reply.payment_intent)


async def capture(context: ApiContext, deps: Dependencies) -> JsonObject:
    _refuse_multicapture(context)
    request = pb.CapturePaymentIntentRequest(id=context.path["intent"])
    amount = context.optional_int("amount_to_capture")
    if amount is not None:
        request.amount_to_capture = amount
    _set_strings(request, context, ("statement_descriptor", "statement_descriptor_suffix"))
    metadata_update(request, context)
    reply = await call(deps.payments.CapturePaymentIntent, request, context)
    return to_json(reply.payment_intent)


async def cancel(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.CancelPaymentIntentRequest(id=context.path["intent"])
    reason = context.optional_str("cancellation_reason")
    if reason is not None:
        request.cancellation_reason = _CANCELLATION_REASONS[reason]  # type: ignore[assignment]
    reply = await call(deps.payments.CancelPaymentIntent, request, context)
    return to_json(reply.payment_intent)


async def list_intents(context: ApiContext, deps: Dependencies) -> JsonObject:
    page = PageRequest.from_params(context.params)
    request = pb.ListPaymentIntentsRequest(**page_fields(page))  # type: ignore[arg-type]
    customer = context.optional_str("customer")
    if customer is not None:
        request.customer = customer
    reply = await call(deps.payments.ListPaymentIntents, request, context)
    return list_envelope(reply.data, has_more=reply.has_more, url=PATH)
