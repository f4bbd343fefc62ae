"""The lists a page embeds, asked of the core for many parents at once: each charge's first
refunds, each PaymentIntent's first charges. The core answers as many parents as fit the part
of one answer such lists may take (remit.payments.embedded_budget) and names those it left
out; they are asked for again, until every parent has its list. However large the lists, each
answer stays within what the facade receives, and none is dropped."""

from collections.abc import Sequence

from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.grpc_call import call
from remit.versioning import MAX_EMBEDDED
from remit_api.payments.v1 import payments_pb2 as pb


class NoProgressError(RuntimeError):
    """The core answered none of the parents asked: asking again would answer none either."""


async def refunds_of_charges(
    deps: Dependencies, context: ApiContext, charge_ids: Sequence[str]
) -> dict[str, pb.RefundsOfCharge]:
    """The first refunds (a page of `MAX_EMBEDDED`) of each of `charge_ids` (at most a page)."""
    found: dict[str, pb.RefundsOfCharge] = {}
    asking = list(charge_ids)
    while asking:
        asked = pb.ListRefundsOfChargesRequest(charges=asking, limit=MAX_EMBEDDED)
        reply = await call(deps.payments.ListRefundsOfCharges, asked, context)
        found.update((page.charge, page) for page in reply.pages)
        asking = _left_out(asking, reply.left_out)
    return found


async def charges_of_intents(
    deps: Dependencies, context: ApiContext, intent_ids: Sequence[str]
) -> dict[str, pb.ChargesOfPaymentIntent]:
    """The first charges (a page of `MAX_EMBEDDED`, each without its refunds) of each of
    `intent_ids` (at most a page)."""
    found: dict[str, pb.ChargesOfPaymentIntent] = {}
    asking = list(intent_ids)
    while asking:
        asked = pb.ListChargesOfPaymentIntentsRequest(payment_intents=asking, limit=MAX_EMBEDDED)
        reply = await call(deps.payments.ListChargesOfPaymentIntents, asked, context)
        found.update((page.payment_intent, page) for page in reply.pages)
        asking = _left_out(asking, reply.left_out)
    return found


def _left_out(asking: list[str], left_out: Sequence[str]) -> list[str]:
    """What to ask next. The core answers the first id asked in every case; an answer that
    leaves them all out would be asked again forever."""
    if len(left_out) >= len(set(asking)):
        raise NoProgressError(f"the core answered none of {len(asking)} ids asked")
    return list(left_out)
