"""`/v1/balance`: the merchant's available and pending funds per currency."""

from remit.core.jsonview import JsonObject, to_json
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.grpc_call import call
from remit.rest.params import Schema
from remit_api.ledger.v1 import ledger_pb2 as pb

RETRIEVE = Schema({})


async def retrieve(context: ApiContext, deps: Dependencies) -> JsonObject:
    reply = await call(deps.ledger.GetBalance, pb.GetBalanceRequest(), context)
    return to_json(reply.balance)
