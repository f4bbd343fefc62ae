"""The PaymentMethod and Token RPCs of PaymentsService, as a mixin the PaymentsServicer inherits.

Protobuf to command, error to status, nothing else.
"""

from typing import Any, Final

import grpc
from google.protobuf.json_format import MessageToDict

from remit.core.errors import invalid
from remit.core.jsonview import enum_numbers
from remit.core.metadata import requested_metadata
from remit.grpcutil.metadata import call_context
from remit.grpcutil.protoconv import timestamp
from remit.payment_methods.billing_message import ADDRESS_FIELDS, rendered_billing_details
from remit.payment_methods.domain import (
    CardSummary,
    NewPaymentMethod,
    PaymentMethod,
    PaymentMethodChanges,
    Token,
)
from remit.payment_methods.service import PaymentMethodsService
from remit.payments.keyed_rpc import client_keyed, reply, serialized
from remit.payments.requests import note_call
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2 as pb

Context = grpc.aio.ServicerContext[Any, Any]

_BRANDS: Final = enum_numbers(common_pb2.CardBrand.DESCRIPTOR)
_FUNDING: Final = enum_numbers(common_pb2.CardFunding.DESCRIPTOR)
_DISPLAY_BRANDS: Final = {
    "amex": "american_express",
    "diners": "diners_club",
    "unionpay": "union_pay",
    "unknown": "other",
}
_LEGACY_BRANDS: Final = {
    "visa": "Visa",
    "mastercard": "MasterCard",
    "amex": "American Express",
    "discover": "Discover",
    "jcb": "JCB",
    "diners": "Diners Club",
    "unionpay": "UnionPay",
}
_ALLOW_REDISPLAY: Final = frozenset({"always", "limited", "unspecified"})


def _as_dict(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def _card_message(card: CardSummary) -> pb.PaymentMethodCard:
    message = pb.PaymentMethodCard(
        brand=_BRANDS.get(card.brand, common_pb2.CARD_BRAND_UNKNOWN),  # type: ignore[arg-type]
        checks=pb.CardChecks(),
        display_brand=_DISPLAY_BRANDS.get(card.brand, card.brand),
        exp_month=card.exp_month,
        exp_year=card.exp_year,
        fingerprint=card.fingerprint,
        funding=_FUNDING.get(card.funding, common_pb2.CARD_FUNDING_UNKNOWN),  # type: ignore[arg-type]
        last4=card.last4,
        networks=pb.CardNetworks(available=[card.brand]),
        three_d_secure_usage=pb.ThreeDSecureUsage(supported=True),
    )
    if card.country is not None:
        message.country = card.country
    return message


def payment_method_message(method: PaymentMethod) -> pb.PaymentMethod:
    message = pb.PaymentMethod(
        id=method.id,
        billing_details=rendered_billing_details(dict(method.billing_details)),
        card=_card_message(method.card),
        created=timestamp(method.created_at),
        livemode=False,
        metadata=dict(method.metadata),
        type=pb.PAYMENT_METHOD_TYPE_CARD,
    )
    if method.customer_id is not None:
        message.customer = method.customer_id
    if method.allow_redisplay is not None:
        message.allow_redisplay = method.allow_redisplay
    return message


def token_message(token: Token) -> pb.Token:
    card = pb.TokenCard(
        id=token.card_id,
        brand=_LEGACY_BRANDS.get(token.card.brand, "Unknown"),
        exp_month=token.card.exp_month,
        exp_year=token.card.exp_year,
        fingerprint=token.card.fingerprint,
        funding=_FUNDING.get(token.card.funding, common_pb2.CARD_FUNDING_UNKNOWN),  # type: ignore[arg-type]
        last4=token.card.last4,
        metadata=dict(token.metadata),
        networks=pb.TokenCardNetworks(),
    )
    if token.card.country is not None:
        card.country = token.card.country
    if token.name is not None:
        card.name = token.name
    for part in ADDRESS_FIELDS:
        value = token.address.get(part)
        if value is not None:
            setattr(card, "address_zip" if part == "postal_code" else f"address_{part}", value)
    message = pb.Token(
        id=token.id,
        card=card,
        created=timestamp(token.created_at),
        livemode=False,
        type=pb.TOKEN_TYPE_CARD,
        used=token.used,
    )
    if token.client_ip is not None:
        message.client_ip = token.client_ip
    return message


def _allow_redisplay(request: Any) -> str | None:
    if not request.HasField("allow_redisplay"):
        return None
    if request.allow_redisplay not in _ALLOW_REDISPLAY:
        raise invalid("allow_redisplay must be always, limited or unspecified.", "allow_redisplay")
    return str(request.allow_redisplay)


def _without_vault_token(request: pb.CreatePaymentMethodRequest) -> pb.CreatePaymentMethodRequest:
    """The request as its idempotency key knows it: the service identifies the card by its
    fingerprint instead of the vault token, which is new on every tokenization."""
    identity = pb.CreatePaymentMethodRequest()
    identity.CopyFrom(request)
    if identity.card.WhichOneof("source") == "vault_token":
        identity.card.ClearField("vault_token")
    return identity


class PaymentMethodRpcs:
    """Mixed into PaymentsServicer, which sets `_payment_methods`."""

    _payment_methods: PaymentMethodsService

    async def CreatePaymentMethod(
        self, request: pb.CreatePaymentMethodRequest, context: Context
    ) -> pb.CreatePaymentMethodResponse:
        call = call_context(context)
        if request.type != pb.PAYMENT_METHOD_TYPE_CARD:
            raise invalid("type must be card.", "type")
        source = request.card.WhichOneof("source") if request.HasField("card") else None
        note_call(call.request_id, call.idempotency_key)

        def answer(method: PaymentMethod) -> pb.CreatePaymentMethodResponse:
            return pb.CreatePaymentMethodResponse(payment_method=payment_method_message(method))

        result = await self._payment_methods.create_once(
            call.account_id,
            client_keyed(
                context, "CreatePaymentMethod", _without_vault_token(request), serialized(answer)
            ),
            NewPaymentMethod(
                vault_token=request.card.vault_token if source == "vault_token" else None,
                token_id=request.card.token if source == "token" else None,
                payment_method_id=request.payment_method
                if request.HasField("payment_method")
                else None,
                billing_details=_as_dict(request.billing_details),
                metadata=requested_metadata(request.metadata),
                allow_redisplay=_allow_redisplay(request),
            ),
        )
        return await reply(result, pb.CreatePaymentMethodResponse, answer, context)

    async def GetPaymentMethod(
        self, request: pb.GetPaymentMethodRequest, context: Context
    ) -> pb.GetPaymentMethodResponse:
        call = call_context(context)
        method = await self._payment_methods.get(call.account_id, request.id)
        return pb.GetPaymentMethodResponse(payment_method=payment_method_message(method))

    async def UpdatePaymentMethod(
        self, request: pb.UpdatePaymentMethodRequest, context: Context
    ) -> pb.UpdatePaymentMethodResponse:
        call = call_context(context)
        note_call(call.request_id, call.idempotency_key)
        card = request.card

        def answer(method: PaymentMethod) -> pb.UpdatePaymentMethodResponse:
            return pb.UpdatePaymentMethodResponse(payment_method=payment_method_message(method))

        result = await self._payment_methods.update_once(
            call.account_id,
            client_keyed(context, "UpdatePaymentMethod", request, serialized(answer)),
            request.id,
            PaymentMethodChanges(
                billing_details=_as_dict(request.billing_details)
                if request.HasField("billing_details")
                else None,
                metadata=requested_metadata(request.metadata),
                unset_metadata_keys=tuple(request.unset_metadata_keys),
                clear_metadata=request.clear_metadata,
                exp_month=card.exp_month if card.HasField("exp_month") else None,
                exp_year=card.exp_year if card.HasField("exp_year") else None,
                allow_redisplay=_allow_redisplay(request),
            ),
        )
        return await reply(result, pb.UpdatePaymentMethodResponse, answer, context)

    async def ListPaymentMethods(
        self, request: pb.ListPaymentMethodsRequest, context: Context
    ) -> pb.ListPaymentMethodsResponse:
        call = call_context(context)
        if request.HasField("type") and request.type != pb.PAYMENT_METHOD_TYPE_CARD:
            raise invalid("type must be card.", "type")
        methods, has_more = await self._payment_methods.list(
            call.account_id,
            limit=request.limit or 10,
            starting_after=request.starting_after if request.HasField("starting_after") else None,
            ending_before=request.ending_before if request.HasField("ending_before") else None,
            customer_id=request.customer if request.HasField("customer") else None,
            allow_redisplay=_allow_redisplay(request),
        )
        return pb.ListPaymentMethodsResponse(
            data=[payment_method_message(method) for method in methods], has_more=has_more
        )

    async def AttachPaymentMethod(
        self, request: pb.AttachPaymentMethodRequest, context: Context
    ) -> pb.AttachPaymentMethodResponse:
        call = call_context(context)
        note_call(call.request_id, call.idempotency_key)
        if not request.customer:
            raise invalid("Missing required param: customer.", "customer", code="parameter_missing")

        def answer(method: PaymentMethod) -> pb.AttachPaymentMethodResponse:
            return pb.AttachPaymentMethodResponse(payment_method=payment_method_message(method))

        result = await self._payment_methods.attach_once(
            call.account_id,
            client_keyed(context, "AttachPaymentMethod", request, serialized(answer)),
            request.id,
            request.customer,
        )
        return await reply(result, pb.AttachPaymentMethodResponse, answer, context)

    async def DetachPaymentMethod(
        self, request: pb.DetachPaymentMethodRequest, context: Context
    ) -> pb.DetachPaymentMethodResponse:
        call = call_context(context)
        note_call(call.request_id, call.idempotency_key)

        def answer(method: PaymentMethod) -> pb.DetachPaymentMethodResponse:
            return pb.DetachPaymentMethodResponse(payment_method=payment_method_message(method))

        result = await self._payment_methods.detach_once(
            call.account_id,
            client_keyed(context, "DetachPaymentMethod", request, serialized(answer)),
            request.id,
        )
        return await reply(result, pb.DetachPaymentMethodResponse, answer, context)

    async def CreateToken(
        self, request: pb.CreateTokenRequest, context: Context
    ) -> pb.CreateTokenResponse:
        call = call_context(context)
        note_call(call.request_id, call.idempotency_key)
        if not request.vault_token:
            raise invalid("vault_token is required.", "vault_token")
        if request.metadata:
            # As the facade refuses card[metadata]: Stripe's tokens have none. Refused before
            # anything is made or kept under the key, with the card stored for the request
            # deleted at the vault, as for any other refusal.
            await self._payment_methods.delete_unused_card(call.account_id, request.vault_token)
            raise invalid(
                "Tokens have no metadata, as Stripe's have none: set it on the payment method "
                "made from the token instead.",
                "metadata",
            )

        def answer(token: Token) -> pb.CreateTokenResponse:
            return pb.CreateTokenResponse(token=token_message(token))

        identity = pb.CreateTokenRequest()
        identity.CopyFrom(request)
        identity.ClearField("vault_token")
        result = await self._payment_methods.create_token_once(
            call.account_id,
            client_keyed(context, "CreateToken", identity, serialized(answer)),
            request.vault_token,
            name=request.name if request.HasField("name") else None,
            address={str(k): str(v) for k, v in _as_dict(request.address).items()},
            client_ip=request.client_ip if request.HasField("client_ip") else None,
        )
        return await reply(result, pb.CreateTokenResponse, answer, context)

    async def GetToken(self, request: pb.GetTokenRequest, context: Context) -> pb.GetTokenResponse:
        call = call_context(context)
        token = await self._payment_methods.get_token(call.account_id, request.id)
        return pb.GetTokenResponse(token=token_message(token))
