"""The REST facade's `fetch` for the versioning layer: lists the related objects old API
versions embed (a PaymentIntent's charges, a Charge's refunds) over gRPC, on behalf of the
caller's account."""

from typing import Final

from remit.accounts.domain import KeyKind
from remit.core.jsonview import JsonObject, to_json
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.grpc_call import call
from remit.versioning import Fetch, RelatedList
from remit_api.payments.v1 import payments_pb2 as pb

MAX_EMBEDDED: Final = 100
"""Stripe embedded at most this many items in such lists (more meant `has_more`)."""


class UnsupportedRelatedListError(LookupError):
    pass


async def _nothing(need: RelatedList, parent_id: str) -> list[JsonObject]:
    return []


def related_fetch(deps: Dependencies, context: ApiContext) -> Fetch:
    if context.principal.key_kind is KeyKind.PUBLISHABLE:
        # What a publishable key sees of an intent leaves these lists out (rest.publishable):
        # fetching them would be calls for nothing, on every poll of a payment page.
        return _nothing

    async def fetch(need: RelatedList, parent_id: str) -> list[JsonObject]:
        match (need.resource, need.filter_param):
            case ("charge", "payment_intent"):
                charges = await call(
                    deps.payments.ListCharges,
                    pb.ListChargesRequest(limit=MAX_EMBEDDED, payment_intent=parent_id),
                    context,
                )
                # As listed at the latest schema: without `refunds`, which the version that
                # embeds the charges adds back in its own shape (gathered in turn).
                return [_without_refunds(to_json(charge)) for charge in charges.data]
            case ("refund", "charge"):
                refunds = await call(
                    deps.payments.ListRefunds,
                    pb.ListRefundsRequest(limit=MAX_EMBEDDED, charge=parent_id),
                    context,
                )
                return [to_json(refund) for refund in refunds.data]
        raise UnsupportedRelatedListError(
            f"no gRPC call lists {need.resource} by {need.filter_param}"
        )

    return fetch


def _without_refunds(charge: JsonObject) -> JsonObject:
    charge.pop("refunds", None)
    return charge
