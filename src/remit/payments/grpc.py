"""PaymentsService over gRPC: protobuf in, use case, protobuf out. Nothing else.

Mutating RPCs run under the caller's idempotency key (metadata `idempotency-key`) or, without
one, a key of their own, so that every mutation has recovery points and the completer can finish
it. A replayed response carries the trailing metadata `idempotent-replayed: true`.
"""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, TypeVar

import grpc
from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.message import Message

from remit.core import confirm_rules
from remit.core.currency import SUPPORTED_CURRENCIES
from remit.core.errors import ErrorKind, RemitError, error_code_doc_url, invalid
from remit.core.metadata import requested_metadata
from remit.core.return_urls import refuse_invalid_return_url
from remit.customers.grpc import CustomerRpcs
from remit.customers.service import CustomersService
from remit.grpcutil.metadata import call_context
from remit.grpcutil.protoconv import filter_bound, from_timestamp, timestamp
from remit.grpcutil.server import ServiceRegistration
from remit.payment_methods.billing_message import rendered_billing_details
from remit.payment_methods.domain import NewPaymentMethod
from remit.payment_methods.grpc import PaymentMethodRpcs
from remit.payment_methods.service import MethodToCharge, PaymentMethodsService
from remit.payments.charge_refunds import NOT_READ, ChargeRefunds
from remit.payments.charges import (
    Charge,
    ChargeStatus,
    ChargeUpdate,
    Refund,
    RefundReason,
    RefundStatus,
)
from remit.payments.dispute_rpcs import DisputeRpcs
from remit.payments.domain import (
    AUTOMATIC_THREE_D_SECURE,
    CancellationReason,
    CaptureMethod,
    ConfirmationMethod,
    NewPaymentIntent,
    PaymentIntent,
    Status,
    Updated,
    usable_payment_method_types,
)
from remit.payments.held_requests_grpc import HeldRequestRpcs
from remit.payments.idempotency import KeyRecord
from remit.payments.keyed import Done, Replay
from remit.payments.keyed_rpc import client_keyed, keyed_call, reply, serialized
from remit.payments.methods import chargeable_or_refusal
from remit.payments.ports import NewCard
from remit.payments.requests import note_call
from remit.payments.risk import Authentication
from remit.payments.service import (
    CaptureParams,
    ConfirmParams,
    KeyedCall,
    PaymentsService,
    refund_failure_reason,
    set_and_cleared,
)
from remit.storage.pagination import CreatedBounds
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2 as pb
from remit_api.payments.v1 import payments_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
T = TypeVar("T")
R = TypeVar("R", bound=Message)
# A request that may carry payment_method_data.
WithMethodData = TypeVar(
    "WithMethodData", pb.CreatePaymentIntentRequest, pb.ConfirmPaymentIntentRequest
)
# A payment under its key, paying with the card of a new payment method, or with the one named.
Pay = Callable[[KeyedCall, NewCard | None], Awaitable[Done[PaymentIntent] | Replay]]

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
# The domain keeps Stripe's names ("off_session", "on_session").
_SETUP_FUTURE_USAGE = {
    name.removeprefix("SETUP_FUTURE_USAGE_").lower(): number
    for name, number in pb.SetupFutureUsage.items()
    if number != pb.SETUP_FUTURE_USAGE_UNSPECIFIED
}
_SETUP_FUTURE_USAGE_FROM_PROTO = {value: key for key, value in _SETUP_FUTURE_USAGE.items()}
_CANCELLATION = {
    reason: pb.PaymentIntentCancellationReason.Value(
        f"PAYMENT_INTENT_CANCELLATION_REASON_{reason.name}"
    )
    for reason in CancellationReason
}
_CANCELLATION_FROM_PROTO = {value: key for key, value in _CANCELLATION.items()}
_CHARGE_STATUS = {
    ChargeStatus.PENDING: pb.CHARGE_STATUS_PENDING,
    ChargeStatus.SUCCEEDED: pb.CHARGE_STATUS_SUCCEEDED,
    ChargeStatus.FAILED: pb.CHARGE_STATUS_FAILED,
}
_REFUND_STATUS = {
    status: pb.RefundStatus.Value(f"REFUND_STATUS_{status.name}") for status in RefundStatus
}
_REFUND_REASON = {
    reason: pb.RefundReason.Value(f"REFUND_REASON_{reason.name}") for reason in RefundReason
}
_REFUND_REASON_FROM_PROTO = {value: key for key, value in _REFUND_REASON.items()}
_OUTCOME_TYPE = {
    "authorized": pb.CHARGE_OUTCOME_TYPE_AUTHORIZED,
    "issuer_declined": pb.CHARGE_OUTCOME_TYPE_ISSUER_DECLINED,
    "blocked": pb.CHARGE_OUTCOME_TYPE_BLOCKED,
    "manual_review": pb.CHARGE_OUTCOME_TYPE_MANUAL_REVIEW,
    "invalid": pb.CHARGE_OUTCOME_TYPE_INVALID,
}
_NETWORK_STATUS = {
    name.removeprefix("NETWORK_STATUS_").lower(): number
    for name, number in common_pb2.NetworkStatus.items()
}
_RISK_LEVEL = {
    name.removeprefix("RISK_LEVEL_").lower(): number
    for name, number in common_pb2.RiskLevel.items()
}
_CHECK = {
    name.removeprefix("CARD_CHECK_RESULT_").lower(): number
    for name, number in common_pb2.CardCheckResult.items()
}
_BRAND = {
    name.removeprefix("CARD_BRAND_").lower(): number
    for name, number in common_pb2.CardBrand.items()
}
_FUNDING = {
    name.removeprefix("CARD_FUNDING_").lower(): number
    for name, number in common_pb2.CardFunding.items()
}


def _set_optional(message: Message, values: Mapping[str, object]) -> None:
    for name, value in values.items():
        if value is not None:
            setattr(message, name, value)


def _shipping_message(shipping: Mapping[str, object]) -> common_pb2.Shipping:
    return ParseDict(dict(shipping), common_pb2.Shipping(), ignore_unknown_fields=True)


def _shipping_of(request: Any) -> dict[str, Any] | None:
    if not request.HasField("shipping"):
        return None
    return MessageToDict(request.shipping, preserving_proto_field_name=True)


_ALLOW_REDIRECTS = {"always": pb.ALLOW_REDIRECTS_ALWAYS, "never": pb.ALLOW_REDIRECTS_NEVER}
_ALLOW_REDIRECTS_FROM_PROTO = {number: name for name, number in _ALLOW_REDIRECTS.items()}


def _automatic_payment_methods_message(
    automatic: Mapping[str, object],
) -> pb.AutomaticPaymentMethods:
    message = pb.AutomaticPaymentMethods(enabled=automatic.get("enabled") is True)
    redirects = automatic.get("allow_redirects")
    if isinstance(redirects, str) and redirects in _ALLOW_REDIRECTS:
        message.allow_redirects = _ALLOW_REDIRECTS[redirects]
    return message


def _automatic_payment_methods_of(
    request: pb.CreatePaymentIntentRequest,
) -> dict[str, object] | None:
    """The create's automatic_payment_methods as the intent stores it; None when not given."""
    if not request.HasField("automatic_payment_methods"):
        return None
    given = request.automatic_payment_methods
    automatic: dict[str, object] = {"enabled": given.enabled}
    if given.HasField("allow_redirects"):
        if given.allow_redirects not in _ALLOW_REDIRECTS_FROM_PROTO:
            raise invalid(
                "automatic_payment_methods[allow_redirects] must be always or never.",
                "automatic_payment_methods[allow_redirects]",
            )
        automatic["allow_redirects"] = _ALLOW_REDIRECTS_FROM_PROTO[given.allow_redirects]
    if automatic["enabled"] and request.payment_method_types:
        # Automatic payment methods choose the types themselves; a list of types turns them off.
        raise invalid(
            "You may only specify one of these parameters: automatic_payment_methods, "
            "payment_method_types.",
            "automatic_payment_methods",
        )
    return automatic


def _types_or_none(types: Sequence[str]) -> tuple[str, ...] | None:
    """A list of payment method types as given; None when empty (a repeated field cannot
    tell an empty list from none, and the facade refuses an empty allowed list)."""
    return tuple(types) if types else None


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
        payment_method_types=usable_payment_method_types(intent),
        allowed_payment_method_types=intent.allowed_payment_method_types or (),
        excluded_payment_method_types=intent.excluded_payment_method_types or (),
        status=_STATUS[intent.status],
    )
    # remit takes no amount details, so the tip is always there and empty, as Stripe shows it.
    message.amount_details.tip.SetInParent()
    if intent.automatic_payment_methods is not None:
        message.automatic_payment_methods.CopyFrom(
            _automatic_payment_methods_message(intent.automatic_payment_methods)
        )
    _set_optional(
        message,
        {
            "customer": intent.customer_id,
            "description": intent.description,
            "latest_charge": intent.latest_charge_id,
            "payment_method": intent.payment_method_id,
            "receipt_email": intent.receipt_email,
            "statement_descriptor": intent.statement_descriptor,
            "statement_descriptor_suffix": intent.statement_descriptor_suffix,
        },
    )
    if intent.shipping is not None:
        message.shipping.CopyFrom(_shipping_message(intent.shipping))
    if intent.setup_future_usage is not None:
        message.setup_future_usage = _SETUP_FUTURE_USAGE[intent.setup_future_usage]
    if intent.canceled_at is not None:
        message.canceled_at.CopyFrom(timestamp(intent.canceled_at))
    if intent.cancellation_reason is not None:
        message.cancellation_reason = _CANCELLATION[intent.cancellation_reason]
    if intent.last_payment_error is not None:
        error = intent.last_payment_error
        message.last_payment_error.type = str(error.get("type") or "card_error")
        _set_optional(
            message.last_payment_error,
            {
                name: error.get(name) if isinstance(error.get(name), str) else None
                for name in ("code", "decline_code", "message", "charge", "payment_method")
            },
        )
        if message.last_payment_error.HasField("code"):
            message.last_payment_error.doc_url = error_code_doc_url(message.last_payment_error.code)
    if intent.next_action is not None:
        message.next_action.type = str(intent.next_action.get("type") or "")
        redirect = intent.next_action.get("redirect_to_url")
        if isinstance(redirect, Mapping):
            _set_optional(
                message.next_action.redirect_to_url,
                {name: _str_or_none(redirect.get(name)) for name in ("url", "return_url")},
            )
        sdk = intent.next_action.get("use_stripe_sdk")
        if isinstance(sdk, Mapping):
            message.next_action.use_stripe_sdk.SetInParent()
            _set_optional(
                message.next_action.use_stripe_sdk,
                {name: _str_or_none(sdk.get(name)) for name in ("type", "stripe_js", "source")},
            )
    if intent.review_id is not None:
        message.review = intent.review_id
    # Stripe shows a card intent's options with their defaults whether or not any was set:
    # 3-D Secure `automatic` (what a confirmation naming none asks for), the rest null.
    message.payment_method_options.card.request_three_d_secure = _REQUEST_THREE_D_SECURE[
        intent.request_three_d_secure or AUTOMATIC_THREE_D_SECURE
    ]
    return message


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


_THREE_D_SECURE_RESULT = {
    "authenticated": pb.THREE_D_SECURE_RESULT_AUTHENTICATED,
    "failed": pb.THREE_D_SECURE_RESULT_FAILED,
}


def _three_d_secure(charge: Charge, details: pb.ChargePaymentMethodDetailsCard) -> None:
    """payment_method_details.card.three_d_secure, once a challenge was answered."""
    authentication = Authentication.from_json(charge.authentication)
    if authentication.challenge_id is None or authentication.result is None:
        return
    secure = details.three_d_secure
    secure.authentication_flow = pb.THREE_D_SECURE_AUTHENTICATION_FLOW_CHALLENGE
    secure.result = _THREE_D_SECURE_RESULT[authentication.result]
    secure.version = "2.2.0"
    secure.transaction_id = authentication.challenge_id
    if authentication.authenticated:
        secure.electronic_commerce_indicator = "05"
    else:
        secure.result_reason = pb.THREE_D_SECURE_RESULT_REASON_REJECTED


def _authorization_features(details: pb.ChargePaymentMethodDetailsCard, amount: int) -> None:
    """What Stripe shows of the authorization's features on every card charge, as it shows them
    for a card that has none of them: remit neither extends, increments, splits nor exceeds an
    authorization, and takes no network tokens."""
    details.extended_authorization.status = "disabled"
    details.incremental_authorization.status = "unavailable"
    details.multicapture.status = "unavailable"
    details.network_token.SetInParent()  # used: false
    details.overcapture.maximum_amount_capturable = amount
    details.overcapture.status = "unavailable"


def charge_message(charge: Charge, refunds: ChargeRefunds = NOT_READ) -> pb.Charge:
    """The charge, with `refunds` holding the refunds given (none unless the read asked)."""
    card = charge.card
    message = pb.Charge(
        id=charge.id,
        amount=charge.amount_minor,
        amount_captured=charge.amount_captured_minor,
        amount_refunded=charge.amount_refunded_minor if charge.captured else 0,
        # Always present, as Stripe renders it: each field null when the method had none.
        billing_details=rendered_billing_details(dict(charge.billing_details)),
        captured=charge.captured,
        authorization_released=charge.authorization_released,
        created=timestamp(charge.created_at),
        currency=charge.currency,
        disputed=charge.disputed,
        livemode=False,
        metadata=dict(charge.metadata),
        paid=charge.status is ChargeStatus.SUCCEEDED,
        payment_intent=charge.payment_intent_id,
        payment_method=charge.payment_method_id,
        refunded=charge.refunded,
        status=_CHARGE_STATUS[charge.status],
        refunds=pb.RefundList(
            data=[refund_message(r) for r in refunds.first],
            has_more=refunds.has_more,
            url=f"/v1/charges/{charge.id}/refunds",
        ),
    )
    message.payment_method_details.type = "card"
    details = message.payment_method_details.card
    details.exp_month, details.exp_year = card.exp_month, card.exp_year
    details.last4 = card.last4
    details.network = card.brand
    details.amount_authorized = charge.amount_minor
    if card.brand in _BRAND:
        details.brand = _BRAND[card.brand]
    if card.funding in _FUNDING:
        details.funding = _FUNDING[card.funding or ""]
    _set_optional(details, {"fingerprint": card.fingerprint, "country": card.country})
    _three_d_secure(charge, details)
    _authorization_features(details, charge.amount_minor)
    if charge.review_id is not None:
        message.review = charge.review_id
    result = charge.network_result or {}
    for check in ("cvc_check", "address_line1_check", "address_postal_code_check"):
        value = result.get(check)
        if isinstance(value, str) and value in _CHECK:
            setattr(details.checks, check, _CHECK[value])
    # The network's id of the transaction, kept from its authorization answer: only an attempt
    # that reached the network has one (approved or declined); one stopped before it (blocked,
    # waiting for or failing 3-D Secure) has none, and renders null.
    _set_optional(
        details, {"network_transaction_id": _str_or_none(result.get("network_transaction_id"))}
    )
    _set_optional(
        message,
        {
            "balance_transaction": charge.balance_transaction_id,
            "customer": charge.customer_id,
            "description": charge.description,
            "failure_code": charge.failure_code,
            "failure_message": charge.failure_message,
            "receipt_email": charge.receipt_email,
            "statement_descriptor": charge.statement_descriptor,
            "statement_descriptor_suffix": charge.statement_descriptor_suffix,
        },
    )
    if charge.shipping is not None:
        message.shipping.CopyFrom(_shipping_message(charge.shipping))
    # Nobody reports charges to remit as fraudulent or safe: Stripe shows such a charge's
    # fraud details as `{}`, never null.
    message.fraud_details.SetInParent()
    if charge.outcome is not None:
        outcome = charge.outcome
        message.outcome.type = _OUTCOME_TYPE.get(
            str(outcome.get("type")), pb.CHARGE_OUTCOME_TYPE_UNSPECIFIED
        )
        network_status = outcome.get("network_status")
        if isinstance(network_status, str) and network_status in _NETWORK_STATUS:
            message.outcome.network_status = _NETWORK_STATUS[network_status]
        risk = outcome.get("risk_level")
        if isinstance(risk, str) and risk in _RISK_LEVEL:
            message.outcome.risk_level = _RISK_LEVEL[risk]
        score = outcome.get("risk_score")
        if isinstance(score, int):
            message.outcome.risk_score = score
        _set_optional(
            message.outcome,
            {
                "rule": _str_or_none(outcome.get("rule")),
                "reason": outcome.get("reason") if isinstance(outcome.get("reason"), str) else None,
                "seller_message": outcome.get("seller_message")
                if isinstance(outcome.get("seller_message"), str)
                else None,
            },
        )
    return message


def refund_message(refund: Refund) -> pb.Refund:
    message = pb.Refund(
        id=refund.id,
        amount=refund.amount_minor,
        charge=refund.charge_id,
        created=timestamp(refund.created_at),
        currency=refund.currency,
        metadata=dict(refund.metadata),
        payment_intent=refund.payment_intent_id,
        status=_REFUND_STATUS[refund.status],
        # Every remit refund goes back to the card it was charged to.
        destination_details=pb.RefundDestinationDetails(
            type="card", card=pb.RefundDestinationCard(type="refund")
        ),
    )
    if refund.reason is not None:
        message.reason = _REFUND_REASON[refund.reason]
    if refund.status is RefundStatus.PENDING:
        # A refund is pending exactly while the acquirer has it to process: sent, or to be
        # sent again by a retry or the completer (its status follows the acquirer's answer).
        # Never `charge_pending` (only a succeeded charge is refunded) nor `insufficient_funds`
        # (a refund may take the balance below zero rather than wait for it: `ledger.postings`).
        # Null once it has ended, as on Stripe.
        message.pending_reason = pb.REFUND_PENDING_REASON_PROCESSING
    if refund.failure_reason is not None:
        message.failure_reason = refund_failure_reason(refund.failure_reason)
    if refund.balance_transaction_id is not None:
        message.balance_transaction = refund.balance_transaction_id
    if refund.failure_balance_transaction_id is not None:
        message.failure_balance_transaction = refund.failure_balance_transaction_id
    if refund.customer_id is not None:
        message.customer = refund.customer_id
    if refund.payment_method_id is not None:
        message.payment_method = refund.payment_method_id
    return message


def _optional(request: Any, name: str) -> Any:
    return getattr(request, name) if request.HasField(name) else None


def _return_url(request: Any) -> str | None:
    return_url: str | None = _optional(request, "return_url")
    refuse_invalid_return_url(return_url)
    return return_url


def _capture_method(request: Any) -> CaptureMethod | None:
    if not request.HasField("capture_method"):
        return None
    if request.capture_method not in _CAPTURE_FROM_PROTO:
        raise invalid(
            "capture_method must be automatic, automatic_async or manual.", "capture_method"
        )
    return _CAPTURE_FROM_PROTO[request.capture_method]


def _setup_future_usage(request: Any) -> str | None:
    if not request.HasField("setup_future_usage"):
        return None
    usage = _SETUP_FUTURE_USAGE_FROM_PROTO.get(request.setup_future_usage)
    if usage is None:
        raise invalid("setup_future_usage must be off_session or on_session.", "setup_future_usage")
    return usage


def _refuse_application_fee(
    request: pb.CreatePaymentIntentRequest
    | pb.UpdatePaymentIntentRequest
    | pb.CapturePaymentIntentRequest,
) -> None:
    """remit has no Connect: there is no application to pay a fee to, so a fee is refused
    rather than dropped (the REST facade does not accept the parameter at all)."""
    if request.HasField("application_fee_amount"):
        raise invalid(
            "application_fee_amount is not supported: remit has no Connect applications.",
            "application_fee_amount",
        )


def _confirm_only_params_given(request: pb.CreatePaymentIntentRequest) -> set[str]:
    given = {name for name in ("off_session", "error_on_requires_action") if getattr(request, name)}
    return given | ({"return_url"} if request.HasField("return_url") else set())


def new_intent_from_request(request: pb.CreatePaymentIntentRequest) -> NewPaymentIntent:
    _refuse_application_fee(request)
    confirmation = ConfirmationMethod.AUTOMATIC
    if request.HasField("confirmation_method"):
        if request.confirmation_method not in _CONFIRMATION_FROM_PROTO:
            raise invalid("confirmation_method must be automatic or manual.", "confirmation_method")
        confirmation = _CONFIRMATION_FROM_PROTO[request.confirmation_method]
    currency = request.currency.lower()
    if currency not in SUPPORTED_CURRENCIES:
        raise invalid(f"Invalid currency: {request.currency}.", "currency", code="invalid_currency")
    return NewPaymentIntent(
        amount_minor=request.amount,
        currency=currency,
        capture_method=_capture_method(request) or CaptureMethod.AUTOMATIC,
        confirmation_method=confirmation,
        metadata=requested_metadata(request.metadata),
        customer_id=_optional(request, "customer"),
        payment_method_id=_optional(request, "payment_method"),
        description=_optional(request, "description"),
        receipt_email=_optional(request, "receipt_email"),
        statement_descriptor=_optional(request, "statement_descriptor"),
        statement_descriptor_suffix=_optional(request, "statement_descriptor_suffix"),
        shipping=_shipping_of(request),
        setup_future_usage=_setup_future_usage(request),
        return_url=_return_url(request),
        automatic_payment_methods=_automatic_payment_methods_of(request),
        allowed_payment_method_types=_types_or_none(request.allowed_payment_method_types),
        excluded_payment_method_types=_types_or_none(request.excluded_payment_method_types),
        request_three_d_secure=_request_three_d_secure(request),
    )


def new_method_from_request(data: pb.PaymentMethodData) -> NewPaymentMethod:
    """payment_method_data as the payment method it makes: a card, given as a token or as the
    vault token of the card the facade has just stored for this request."""
    if data.type != pb.PAYMENT_METHOD_TYPE_CARD:
        raise invalid("payment_method_data[type] must be card.", "payment_method_data[type]")
    source = data.card.WhichOneof("source") if data.HasField("card") else None
    if source is None:
        raise invalid(
            "Missing required param: payment_method_data[card].",
            "payment_method_data[card]",
            code="parameter_missing",
        )
    return NewPaymentMethod(
        vault_token=data.card.vault_token if source == "vault_token" else None,
        token_id=data.card.token if source == "token" else None,
        billing_details=MessageToDict(data.billing_details, preserving_proto_field_name=True),
        metadata=requested_metadata(data.metadata, "payment_method_data[metadata]"),
    )


def _without_vault_token(request: WithMethodData) -> WithMethodData:
    """The request as its idempotency key knows it: a vault token in payment_method_data is
    new on every tokenization, so the card stands in for it (`pay_with_new_method`)."""
    data = request.payment_method_data
    if not (request.HasField("payment_method_data") and data.card.HasField("vault_token")):
        return request
    identity = type(request)()
    identity.CopyFrom(request)
    identity.payment_method_data.card.ClearField("vault_token")
    return identity


def _paid_with(outcome: PaymentIntent | RemitError) -> str | None:
    """The payment method a payment's outcome was made with: the intent's, or the declined
    one a card error names."""
    if isinstance(outcome, RemitError):
        return outcome.extra.get("payment_method")
    return outcome.payment_method_id


def _types_given(
    request: pb.UpdatePaymentIntentRequest | pb.ConfirmPaymentIntentRequest, name: str
) -> tuple[str, ...] | None:
    """A list of payment method types an update or a confirmation gives: None when it gives
    none, empty when it clears the intent's, refused when it does both."""
    types = _types_or_none(getattr(request, name))
    if not getattr(request, f"clear_{name}"):
        return types
    if types is not None:
        raise invalid(f"{name} cannot be both set and cleared.", name)
    return ()


def intent_update_from_request(request: pb.UpdatePaymentIntentRequest) -> Updated:
    """What an update changes besides metadata; refused when it both sets and clears shipping
    or setup_future_usage, as a confirmation is."""
    _refuse_application_fee(request)
    if request.HasField("payment_method_data"):
        # The card of a new payment method is made at create or confirm, inside the payment's
        # own transaction; an update names an existing payment method instead. Refused rather
        # than ignored, so a caller never believes its card was saved.
        raise invalid(
            "payment_method_data is accepted when creating or confirming a PaymentIntent; "
            "to change the payment method of this one, pass `payment_method`.",
            "payment_method_data",
        )
    if request.HasField("shipping") and request.clear_shipping:
        raise set_and_cleared("shipping")
    if request.HasField("setup_future_usage") and request.clear_setup_future_usage:
        raise set_and_cleared("setup_future_usage")
    changes: dict[str, object] = {}
    for name, field in (
        ("customer_id", "customer"),
        ("description", "description"),
        ("receipt_email", "receipt_email"),
        ("statement_descriptor", "statement_descriptor"),
        ("statement_descriptor_suffix", "statement_descriptor_suffix"),
    ):
        if request.HasField(field):  # type: ignore[arg-type]
            # An empty string clears a nullable field, as Stripe's `description=` does.
            changes[name] = getattr(request, field) or None
    capture_method = _capture_method(request)
    if capture_method is not None:
        changes["capture_method"] = capture_method
    if request.HasField("setup_future_usage") or request.clear_setup_future_usage:
        changes["setup_future_usage"] = _setup_future_usage(request)
    if request.HasField("shipping") or request.clear_shipping:
        changes["shipping"] = _shipping_of(request)
    if request.payment_method_types:
        # Written by an account on a version before endive: the types are chosen explicitly,
        # so automatic payment methods go off, as on a create naming them.
        changes["automatic_payment_methods"] = None
    for name in ("allowed_payment_method_types", "excluded_payment_method_types"):
        # A non-empty list replaces the intent's, and its clear flag lifts it.
        types = _types_given(request, name)
        if types is not None:
            changes[name] = types or None
    requested = _request_three_d_secure(request)
    if requested is not None:
        changes["request_three_d_secure"] = requested
    return Updated(
        at=_EPOCH,
        amount_minor=_optional(request, "amount"),
        currency=request.currency.lower() if request.HasField("currency") else None,
        payment_method_id=_optional(request, "payment_method"),
        changes=changes,
    )


def charge_update_from_request(request: pb.UpdateChargeRequest) -> ChargeUpdate:
    """What an update of a charge changes; refused when it both sets and clears shipping."""
    if request.HasField("shipping") and request.clear_shipping:
        raise set_and_cleared("shipping")
    return ChargeUpdate(
        description=_optional(request, "description"),
        receipt_email=_optional(request, "receipt_email"),
        shipping=_shipping_of(request),
        clear_shipping=request.clear_shipping,
        metadata=requested_metadata(request.metadata),
        unset_metadata_keys=tuple(request.unset_metadata_keys),
        clear_metadata=request.clear_metadata,
    )


_REQUEST_THREE_D_SECURE = {
    name.removeprefix("REQUEST_THREE_D_SECURE_").lower(): number
    for name, number in pb.RequestThreeDSecure.items()
    if number != pb.REQUEST_THREE_D_SECURE_UNSPECIFIED
}
_REQUEST_THREE_D_SECURE_FROM_PROTO = {v: k for k, v in _REQUEST_THREE_D_SECURE.items()}


# What a payment page may change the merchant's setup_future_usage to: set it when unset, or
# raise it from on_session to off_session (Stripe.js saving the card for later off-session use).
_PAGE_MAY_CHANGE_FUTURE_USAGE: Final = frozenset({(None, "on_session"), (None, "off_session"),
                                                  ("on_session", "off_session")})  # fmt: skip


def refuse_a_payment_page_changing_future_usage(
    current: str | None, confirm: ConfirmParams
) -> None:
    """A confirmation with a client secret (a payment page, with a publishable key) may set
    the intent's `setup_future_usage`, or change it from on_session to off_session; it may not
    lower it or clear it, which only the merchant decides."""
    if confirm.setup_future_usage is None and not confirm.clear_setup_future_usage:
        return  # not asked to change
    wanted = confirm.setup_future_usage  # None: cleared
    if wanted == current or (current, wanted) in _PAGE_MAY_CHANGE_FUTURE_USAGE:
        return
    raise invalid(
        f"This PaymentIntent's setup_future_usage is {current}; with a publishable key it may "
        "only be set when unset, or changed from on_session to off_session.",
        "setup_future_usage",
    )


def _request_three_d_secure(
    request: pb.CreatePaymentIntentRequest
    | pb.UpdatePaymentIntentRequest
    | pb.ConfirmPaymentIntentRequest,
) -> str | None:
    """payment_method_options.card.request_three_d_secure as given, or None."""
    card_options = request.payment_method_options.card
    if not card_options.HasField("request_three_d_secure"):
        return None
    requested = _REQUEST_THREE_D_SECURE_FROM_PROTO.get(card_options.request_three_d_secure)
    if requested is None:
        raise invalid(
            "request_three_d_secure must be any, automatic or challenge.",
            "payment_method_options[card][request_three_d_secure]",
        )
    return requested


def confirm_params(
    request: pb.CreatePaymentIntentRequest | pb.ConfirmPaymentIntentRequest,
) -> ConfirmParams:
    requested = _request_three_d_secure(request)
    receipt_email, shipping, clear_shipping, clear_usage = None, None, False, False
    allowed, excluded = None, None
    # A create with `confirm` carries them on the new intent already (new_intent_from_request).
    if isinstance(request, pb.ConfirmPaymentIntentRequest):
        receipt_email, shipping = _optional(request, "receipt_email"), _shipping_of(request)
        clear_shipping = request.clear_shipping
        clear_usage = request.clear_setup_future_usage
        allowed = _types_given(request, "allowed_payment_method_types")
        excluded = _types_given(request, "excluded_payment_method_types")
    return ConfirmParams(
        payment_method_id=_optional(request, "payment_method"),
        capture_method=_capture_method(request),
        return_url=_return_url(request),
        off_session=bool(_optional(request, "off_session")),
        error_on_requires_action=bool(_optional(request, "error_on_requires_action")),
        request_three_d_secure=requested,
        use_stripe_sdk=bool(_optional(request, "use_stripe_sdk")),
        setup_future_usage=_setup_future_usage(request),
        clear_setup_future_usage=clear_usage,
        # Present and empty clears it, as on update.
        receipt_email=receipt_email or None,
        clear_receipt_email=receipt_email == "",
        shipping=shipping,
        clear_shipping=clear_shipping,
        allowed_payment_method_types=allowed,
        excluded_payment_method_types=excluded,
        names_payment_method_types=isinstance(request, pb.ConfirmPaymentIntentRequest)
        and bool(request.payment_method_types),
    )


def capture_params(request: pb.CapturePaymentIntentRequest) -> CaptureParams:
    _refuse_application_fee(request)
    if request.HasField("final_capture") and not request.final_capture:
        # remit captures once and releases the rest; ignored, the flag would release what the
        # caller asked to keep for later captures. Refused as the REST facade refuses it.
        raise invalid(
            "Capturing in several parts (final_capture=false) is not supported.", "final_capture"
        )
    return CaptureParams(
        metadata=requested_metadata(request.metadata),
        unset_metadata_keys=tuple(request.unset_metadata_keys),
        clear_metadata=request.clear_metadata,
        statement_descriptor=_optional(request, "statement_descriptor"),
        statement_descriptor_suffix=_optional(request, "statement_descriptor_suffix"),
    )


def created_bounds(created: common_pb2.CreatedFilter) -> CreatedBounds:
    return CreatedBounds(
        gt=filter_bound(created, "gt"),
        gte=filter_bound(created, "gte"),
        lt=filter_bound(created, "lt"),
        lte=filter_bound(created, "lte"),
    )


class PaymentsServicer(
    CustomerRpcs,
    PaymentMethodRpcs,
    HeldRequestRpcs,
    DisputeRpcs,
    payments_pb2_grpc.PaymentsServiceServicer,
):
    def __init__(
        self,
        service: PaymentsService,
        customers: CustomersService,
        payment_methods: PaymentMethodsService,
    ) -> None:
        self._service = service
        self._customers = customers
        self._payment_methods = payment_methods
        self._disputes = service.disputes()

    # --- PaymentIntents ---

    async def CreatePaymentIntent(
        self, request: pb.CreatePaymentIntentRequest, context: Context
    ) -> pb.CreatePaymentIntentResponse:
        confirm_rules.refuse_confirm_only_params(
            confirm=request.confirm, given=_confirm_only_params_given(request)
        )
        call = keyed_call(context, "CreatePaymentIntent", _without_vault_token(request))
        confirm = None
        if request.confirm:
            confirm = confirm_params(request)
        new = new_intent_from_request(request)

        def create(
            call: KeyedCall, new_card: NewCard | None
        ) -> Awaitable[Done[PaymentIntent] | Replay]:
            return self._service.create_payment_intent(
                call, new, self._respond_create, confirm=confirm, new_card=new_card
            )

        result = await self._with_method_data(request, call, create)
        return await reply(
            result,
            pb.CreatePaymentIntentResponse,
            lambda i: pb.CreatePaymentIntentResponse(payment_intent=payment_intent_message(i)),
            context,
        )

    async def _with_method_data(
        self, request: WithMethodData, call: KeyedCall, pay: Pay
    ) -> Done[PaymentIntent] | Replay:
        """`pay` with the payment method the request names, or with the new one it makes of
        its payment_method_data, written in the payment's own transaction."""
        if not request.HasField("payment_method_data"):
            return await pay(call, None)

        def pay_with_new(
            keyed: KeyedCall, named: MethodToCharge | RemitError
        ) -> Awaitable[Done[PaymentIntent] | Replay]:
            return pay(keyed, chargeable_or_refusal(named))

        return await self._payment_methods.pay_with_new_method(
            call.account_id,
            call,
            new_method_from_request(request.payment_method_data),
            pay_with_new,
            _paid_with,
        )

    @staticmethod
    def _respond_create(intent: PaymentIntent) -> bytes:
        return pb.CreatePaymentIntentResponse(
            payment_intent=payment_intent_message(intent)
        ).SerializeToString()

    async def GetPaymentIntent(
        self, request: pb.GetPaymentIntentRequest, context: Context
    ) -> pb.GetPaymentIntentResponse:
        call = call_context(context)
        intent = await self._service.get_payment_intent(
            call.account_id, request.id, _optional(request, "client_secret")
        )
        return pb.GetPaymentIntentResponse(payment_intent=payment_intent_message(intent))

    async def UpdatePaymentIntent(
        self, request: pb.UpdatePaymentIntentRequest, context: Context
    ) -> pb.UpdatePaymentIntentResponse:
        update = intent_update_from_request(request)
        call = keyed_call(context, "UpdatePaymentIntent", request)
        metadata_change = (
            requested_metadata(request.metadata),
            list(request.unset_metadata_keys),
            request.clear_metadata,
        )

        def respond(intent: PaymentIntent) -> bytes:
            return pb.UpdatePaymentIntentResponse(
                payment_intent=payment_intent_message(intent)
            ).SerializeToString()

        result = await self._service.update_payment_intent(
            call, request.id, update, respond, metadata=metadata_change
        )
        return await reply(
            result,
            pb.UpdatePaymentIntentResponse,
            lambda i: pb.UpdatePaymentIntentResponse(payment_intent=payment_intent_message(i)),
            context,
        )

    async def ConfirmPaymentIntent(
        self, request: pb.ConfirmPaymentIntentRequest, context: Context
    ) -> pb.ConfirmPaymentIntentResponse:
        call = keyed_call(context, "ConfirmPaymentIntent", _without_vault_token(request))
        confirm = confirm_params(request)

        def respond(intent: PaymentIntent) -> bytes:
            return pb.ConfirmPaymentIntentResponse(
                payment_intent=payment_intent_message(intent)
            ).SerializeToString()

        async def confirm_with(
            keyed: KeyedCall, new_card: NewCard | None
        ) -> Done[PaymentIntent] | Replay:
            # Checked here, where a refusal also deletes the card the facade stored for it. A
            # client secret comes from a payment page (the facade forwards it for publishable
            # keys only), which may not confirm what the merchant confirms itself.
            if request.HasField("client_secret"):
                intent = await self._service.get_payment_intent(
                    keyed.account_id, request.id, request.client_secret
                )
                if intent.confirmation_method is ConfirmationMethod.MANUAL:
                    raise RemitError(
                        message="This PaymentIntent's confirmation_method is manual: confirm "
                        "it on your server, with a secret key.",
                        kind=ErrorKind.INVALID_ARGUMENT,
                    )
                refuse_a_payment_page_changing_future_usage(intent.setup_future_usage, confirm)
            return await self._service.confirm_payment_intent(
                keyed, request.id, confirm, respond, new_card=new_card
            )

        result = await self._with_method_data(request, call, confirm_with)
        return await reply(
            result,
            pb.ConfirmPaymentIntentResponse,
            lambda i: pb.ConfirmPaymentIntentResponse(payment_intent=payment_intent_message(i)),
            context,
        )

    async def CapturePaymentIntent(
        self, request: pb.CapturePaymentIntentRequest, context: Context
    ) -> pb.CapturePaymentIntentResponse:
        params = capture_params(request)
        call = keyed_call(context, "CapturePaymentIntent", request)

        def respond(intent: PaymentIntent) -> bytes:
            return pb.CapturePaymentIntentResponse(
                payment_intent=payment_intent_message(intent)
            ).SerializeToString()

        result = await self._service.capture_payment_intent(
            call, request.id, _optional(request, "amount_to_capture"), respond, params
        )
        return await reply(
            result,
            pb.CapturePaymentIntentResponse,
            lambda i: pb.CapturePaymentIntentResponse(payment_intent=payment_intent_message(i)),
            context,
        )

    async def CancelPaymentIntent(
        self, request: pb.CancelPaymentIntentRequest, context: Context
    ) -> pb.CancelPaymentIntentResponse:
        call = keyed_call(context, "CancelPaymentIntent", request)
        reason = None
        if request.HasField("cancellation_reason"):
            if request.cancellation_reason not in _CANCELLATION_FROM_PROTO:
                raise invalid("Unknown cancellation_reason.", "cancellation_reason")
            reason = _CANCELLATION_FROM_PROTO[request.cancellation_reason]

        def respond(intent: PaymentIntent) -> bytes:
            return pb.CancelPaymentIntentResponse(
                payment_intent=payment_intent_message(intent)
            ).SerializeToString()

        result = await self._service.cancel_payment_intent(call, request.id, reason, respond)
        return await reply(
            result,
            pb.CancelPaymentIntentResponse,
            lambda i: pb.CancelPaymentIntentResponse(payment_intent=payment_intent_message(i)),
            context,
        )

    async def ListPaymentIntents(
        self, request: pb.ListPaymentIntentsRequest, context: Context
    ) -> pb.ListPaymentIntentsResponse:
        call = call_context(context)
        intents, has_more = await self._service.list_payment_intents(
            call.account_id,
            limit=request.limit or 10,
            starting_after=_optional(request, "starting_after"),
            ending_before=_optional(request, "ending_before"),
            created=created_bounds(request.created),
            customer_id=_optional(request, "customer"),
        )
        return pb.ListPaymentIntentsResponse(
            data=[payment_intent_message(intent) for intent in intents], has_more=has_more
        )

    # --- Charges ---

    async def GetCharge(
        self, request: pb.GetChargeRequest, context: Context
    ) -> pb.GetChargeResponse:
        call = call_context(context)
        charge, refunds = await self._service.get_charge(
            call.account_id, request.id, with_refunds=not request.without_refunds
        )
        return pb.GetChargeResponse(charge=charge_message(charge, refunds))

    async def UpdateCharge(
        self, request: pb.UpdateChargeRequest, context: Context
    ) -> pb.UpdateChargeResponse:
        call = call_context(context)
        # One transaction, without remit's idempotency machinery (which notes the request
        # of the payments it runs): the events of the change name its request here.
        note_call(call.request_id, call.idempotency_key)

        def answer(updated: tuple[Charge, ChargeRefunds]) -> pb.UpdateChargeResponse:
            charge, refunds = updated
            return pb.UpdateChargeResponse(charge=charge_message(charge, refunds))

        result = await self._service.update_charge(
            call.account_id,
            request.id,
            charge_update_from_request(request),
            client_keyed(context, "UpdateCharge", request, serialized(answer)),
            with_refunds=not request.without_refunds,
        )
        return await reply(result, pb.UpdateChargeResponse, answer, context)

    async def ListCharges(
        self, request: pb.ListChargesRequest, context: Context
    ) -> pb.ListChargesResponse:
        call = call_context(context)
        charges, has_more = await self._service.list_charges(
            call.account_id,
            limit=request.limit or 10,
            starting_after=_optional(request, "starting_after"),
            ending_before=_optional(request, "ending_before"),
            created=created_bounds(request.created),
            customer_id=_optional(request, "customer"),
            payment_intent_id=_optional(request, "payment_intent"),
            with_refunds=not request.without_refunds,
        )
        return pb.ListChargesResponse(
            data=[charge_message(c, r) for c, r in charges],
            has_more=has_more,
            refunds_left_out=[c.id for c, r in charges if r.left_out],
        )

    async def ListChargesOfPaymentIntents(
        self, request: pb.ListChargesOfPaymentIntentsRequest, context: Context
    ) -> pb.ListChargesOfPaymentIntentsResponse:
        call = call_context(context)
        pages = await self._service.charges_of_intents(
            call.account_id, list(request.payment_intents), limit=request.limit or 10
        )
        return pb.ListChargesOfPaymentIntentsResponse(
            pages=[
                pb.ChargesOfPaymentIntent(
                    payment_intent=intent_id,
                    data=[charge_message(charge) for charge in page.first],
                    has_more=page.has_more,
                    total_count=page.total_count,
                )
                for intent_id, page in pages.pages.items()
            ],
            left_out=pages.left_out,
        )

    async def ListRefundsOfCharges(
        self, request: pb.ListRefundsOfChargesRequest, context: Context
    ) -> pb.ListRefundsOfChargesResponse:
        call = call_context(context)
        pages = await self._service.refunds_of_charges(
            call.account_id, list(request.charges), limit=request.limit or 10
        )
        return pb.ListRefundsOfChargesResponse(
            pages=[
                pb.RefundsOfCharge(
                    charge=charge_id,
                    data=[refund_message(refund) for refund in page.first],
                    has_more=page.has_more,
                    total_count=page.total_count,
                )
                for charge_id, page in pages.pages.items()
            ],
            left_out=pages.left_out,
        )

    # --- Refunds ---

    async def CreateRefund(
        self, request: pb.CreateRefundRequest, context: Context
    ) -> pb.CreateRefundResponse:
        call = keyed_call(context, "CreateRefund", request)
        if request.HasField("instructions_email"):
            # Stripe emails refund instructions only for payment methods it cannot refund
            # directly; remit refunds cards, so none would be sent. Refused, not dropped, and
            # as the REST facade refuses it (it takes no such parameter): parameter_unknown.
            raise invalid(
                "instructions_email is not supported: remit refunds cards, which need no "
                "refund instructions.",
                "instructions_email",
                code="parameter_unknown",
            )
        reason = None
        if request.HasField("reason"):
            if request.reason not in _REFUND_REASON_FROM_PROTO:
                raise invalid("Unknown refund reason.", "reason")
            reason = _REFUND_REASON_FROM_PROTO[request.reason]

        def respond(refund: Refund) -> bytes:
            return pb.CreateRefundResponse(refund=refund_message(refund)).SerializeToString()

        result = await self._service.create_refund(
            call,
            charge_id=_optional(request, "charge"),
            payment_intent_id=_optional(request, "payment_intent"),
            amount_minor=_optional(request, "amount"),
            reason=reason,
            metadata=requested_metadata(request.metadata),
            respond=respond,
        )
        return await reply(
            result,
            pb.CreateRefundResponse,
            lambda r: pb.CreateRefundResponse(refund=refund_message(r)),
            context,
        )

    async def GetRefund(
        self, request: pb.GetRefundRequest, context: Context
    ) -> pb.GetRefundResponse:
        call = call_context(context)
        refund = await self._service.get_refund(call.account_id, request.id)
        return pb.GetRefundResponse(refund=refund_message(refund))

    async def UpdateRefund(
        self, request: pb.UpdateRefundRequest, context: Context
    ) -> pb.UpdateRefundResponse:
        call = call_context(context)
        note_call(call.request_id, call.idempotency_key)

        def answer(refund: Refund) -> pb.UpdateRefundResponse:
            return pb.UpdateRefundResponse(refund=refund_message(refund))

        result = await self._service.update_refund(
            call.account_id,
            request.id,
            requested_metadata(request.metadata),
            request.clear_metadata,
            list(request.unset_metadata_keys),
            client_keyed(context, "UpdateRefund", request, serialized(answer)),
        )
        return await reply(result, pb.UpdateRefundResponse, answer, context)

    async def CancelRefund(
        self, request: pb.CancelRefundRequest, context: Context
    ) -> pb.CancelRefundResponse:
        call = call_context(context)
        note_call(call.request_id, call.idempotency_key)

        def answer(refund: Refund) -> pb.CancelRefundResponse:
            return pb.CancelRefundResponse(refund=refund_message(refund))

        result = await self._service.cancel_refund(
            call.account_id,
            request.id,
            client_keyed(context, "CancelRefund", request, serialized(answer)),
        )
        return await reply(result, pb.CancelRefundResponse, answer, context)

    async def ListRefunds(
        self, request: pb.ListRefundsRequest, context: Context
    ) -> pb.ListRefundsResponse:
        call = call_context(context)
        refunds, has_more = await self._service.list_refunds(
            call.account_id,
            limit=request.limit or 10,
            starting_after=_optional(request, "starting_after"),
            ending_before=_optional(request, "ending_before"),
            created=created_bounds(request.created),
            charge_id=_optional(request, "charge"),
            payment_intent_id=_optional(request, "payment_intent"),
        )
        return pb.ListRefundsResponse(data=[refund_message(r) for r in refunds], has_more=has_more)

    # --- Recovery ---

    async def resume(self, record: KeyRecord) -> None:
        """Finish a request abandoned at a recovery point, as its client's retry would."""
        body = record.request_body
        if record.endpoint == "CreatePaymentIntent":
            await self._service.resume_attempt(record, self._respond_create)
        elif record.endpoint == "ConfirmPaymentIntent":
            await self._service.resume_attempt(
                record,
                lambda i: pb.ConfirmPaymentIntentResponse(
                    payment_intent=payment_intent_message(i)
                ).SerializeToString(),
            )
        elif record.endpoint == "CapturePaymentIntent":
            await self._service.resume_capture(
                record,
                lambda i: pb.CapturePaymentIntentResponse(
                    payment_intent=payment_intent_message(i)
                ).SerializeToString(),
            )
        elif record.endpoint == "CancelPaymentIntent":
            request = pb.CancelPaymentIntentRequest.FromString(body)
            reason = _CANCELLATION_FROM_PROTO.get(request.cancellation_reason)
            await self._service.resume_cancel(
                record,
                reason,
                lambda i: pb.CancelPaymentIntentResponse(
                    payment_intent=payment_intent_message(i)
                ).SerializeToString(),
            )
        elif record.endpoint == "CreateRefund":
            await self._service.resume_refund(
                record,
                lambda r: pb.CreateRefundResponse(refund=refund_message(r)).SerializeToString(),
            )
        else:
            # Returning would count the request as completed while nothing finished it: the
            # failure is recorded on its key instead, for an operator (`remit held-requests`).
            raise UnresumableRequestError(
                f"the completer cannot resume {record.endpoint} requests: nothing finishes it"
            )


class UnresumableRequestError(Exception):
    """A request held at a recovery point of an endpoint the completer has no resume step for
    (one left by another remit version, say)."""


_EPOCH = from_timestamp(common_pb2.CreatedFilter().gt)


def payments_registration(servicer: PaymentsServicer) -> ServiceRegistration:
    return ServiceRegistration(
        full_name=pb.DESCRIPTOR.services_by_name["PaymentsService"].full_name,
        add_to_server=lambda server: payments_pb2_grpc.add_PaymentsServiceServicer_to_server(
            servicer, server
        ),
    )
