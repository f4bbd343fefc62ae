"""`/v1/tokens`: card tokens. The facade tokenizes the card in the vault, then the core records
a single-use token that refers to the vault token."""

from typing import Final

from remit.core.jsonview import JsonObject, to_json
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.grpc_call import call
from remit.rest.params import Field, Object, Schema, String
from remit.rest.resources.cards import raw_card_fields, tokenize
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2 as pb

# card[address_zip] is Stripe's flat name for the postal code.
_ADDRESS_PARAMS: Final = {
    "address_city": "city",
    "address_country": "country",
    "address_line1": "line1",
    "address_line2": "line2",
    "address_state": "state",
    "address_zip": "postal_code",
}

# The cardholder's name and address take Stripe's default limit on text, as the same card's
# billing details do on /v1/payment_methods: both are stored as the card's billing details.
# Only what Stripe's `card` hash takes: it has no `metadata` (neither has a token), so
# `card[metadata]` is refused as unknown, as any other name Stripe would not know is.
_CARD_FIELDS: dict[str, Field[object]] = {
    **raw_card_fields(),
    "name": String(),
    "currency": String(),
    **{name: String() for name in _ADDRESS_PARAMS},
}
CREATE = Schema({"card": Object(_CARD_FIELDS, required={"number"})}, required={"card"})
RETRIEVE = Schema({})


async def create(context: ApiContext, deps: Dependencies) -> JsonObject:
    card = context.params["card"]
    assert isinstance(card, dict)
    address = common_pb2.Address(
        **{part: str(card[param]) for param, part in _ADDRESS_PARAMS.items() if param in card}
    )
    billing = common_pb2.BillingDetails(address=address)
    if isinstance(card.get("name"), str):
        billing.name = card["name"]
    tokenized = await tokenize(context, deps, card, billing)
    request = pb.CreateTokenRequest(
        vault_token=tokenized.vault_token,
        address=address,
    )
    if isinstance(card.get("name"), str):
        request.name = card["name"]
    reply = await call(deps.payments.CreateToken, request, context)
    return to_json(reply.token)


async def retrieve(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.GetTokenRequest(id=context.path["token"])
    reply = await call(deps.payments.GetToken, request, context)
    return to_json(reply.token)
