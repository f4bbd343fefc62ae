"""`/v1/balance_transactions`: every movement of the merchant's balance, newest first."""

from remit.core.currency import SUPPORTED_CURRENCIES
from remit.core.jsonview import JsonObject, enum_numbers, to_json
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.expand import register_resource
from remit.rest.grpc_call import call
from remit.rest.listing import list_envelope, page_fields
from remit.rest.params import CurrencyCode, Enum, PageRequest, Schema, String, list_schema
from remit_api.ledger.v1 import ledger_pb2 as pb

PATH = "/v1/balance_transactions"

_TYPES = enum_numbers(pb.BalanceTransactionType.DESCRIPTOR)

RETRIEVE = Schema({})
LIST = list_schema(
    {"payout": String(), "source": String(), "type": Enum(*_TYPES), "currency": CurrencyCode()}
)


async def fetch_balance_transaction(context: ApiContext, deps: object, txn_id: str) -> JsonObject:
    """A balance transaction by id, for `expand[]` (a charge's or refund's
    `balance_transaction`)."""
    assert isinstance(deps, Dependencies)
    request = pb.GetBalanceTransactionRequest(id=txn_id)
    reply = await call(deps.ledger.GetBalanceTransaction, request, context)
    return to_json(reply.balance_transaction)


register_resource(pb.BalanceTransaction.DESCRIPTOR, fetch_balance_transaction)


async def retrieve(context: ApiContext, deps: Dependencies) -> JsonObject:
    return await fetch_balance_transaction(context, deps, context.path["id"])


async def list_balance_transactions(context: ApiContext, deps: Dependencies) -> JsonObject:
    page = PageRequest.from_params(context.params)
    currency = context.optional_str("currency")
    if currency is not None and currency not in SUPPORTED_CURRENCIES:
        # Stripe supports currencies remit does not: filtering by one finds nothing here (the
        # ledger refuses it, as it refuses a posting in one).
        return list_envelope([], has_more=False, url=PATH)
    request = pb.ListBalanceTransactionsRequest(**page_fields(page))  # type: ignore[arg-type]
    for name in ("payout", "source", "currency"):
        value = context.optional_str(name)
        if value is not None:
            setattr(request, name, value)
    txn_type = context.optional_str("type")
    if txn_type is not None:
        request.type = _TYPES[txn_type]  # type: ignore[assignment]
    reply = await call(deps.ledger.ListBalanceTransactions, request, context)
    return list_envelope(reply.data, has_more=reply.has_more, url=PATH)
