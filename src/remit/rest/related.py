"""The REST facade's `fetch` for the versioning layer: lists the related objects old API
versions embed (a PaymentIntent's charges, a Charge's refunds), and finds those they show
expanded (a Charge's Radar rule), over gRPC, on behalf of the caller's account."""

from typing import Any

from remit.accounts.domain import KeyKind
from remit.core.errors import ErrorKind, RemitError
from remit.core.jsonview import JsonObject, to_json
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.grpc_call import call
from remit.versioning import MAX_EMBEDDED, Fetch, Need, RelatedObject, RelatedPage
from remit_api.payments.v1 import payments_pb2 as pb
from remit_api.radar.v1 import radar_pb2 as rpb


class UnsupportedRelatedListError(LookupError):
    pass


async def _nothing(need: Need, parent_id: str) -> RelatedPage:
    return RelatedPage.whole([])


def related_fetch(deps: Dependencies, context: ApiContext) -> Fetch:
    if context.principal.key_kind is KeyKind.PUBLISHABLE:
        # What a publishable key sees of an intent leaves these lists out (rest.publishable):
        # fetching them would be calls for nothing, on every poll of a payment page.
        return _nothing

    async def fetch(need: Need, parent_id: str) -> RelatedPage:
        if isinstance(need, RelatedObject):
            return await _found(need, parent_id)
        match (need.resource, need.filter_param):
            case ("charge", "payment_intent"):
                charges = pb.ListChargesRequest(
                    limit=MAX_EMBEDDED, payment_intent=parent_id, without_refunds=True
                )
                first, more, total = await _first_page(deps.payments.ListCharges, charges, context)
                # As listed at the latest schema: without `refunds`, which the version that
                # embeds the charges adds back in its own shape (gathered in turn).
                data = [_without_refunds(to_json(charge)) for charge in first]
                return RelatedPage(data, has_more=more, total_count=total)
            case ("refund", "charge"):
                refunds = pb.ListRefundsRequest(limit=MAX_EMBEDDED, charge=parent_id)
                first, more, total = await _first_page(deps.payments.ListRefunds, refunds, context)
                data = [to_json(refund) for refund in first]
                return RelatedPage(data, has_more=more, total_count=total)
        raise UnsupportedRelatedListError(
            f"no gRPC call lists {need.resource} by {need.filter_param}"
        )

    async def _found(need: RelatedObject, key: str) -> RelatedPage:
        if need.resource != "rule":
            raise UnsupportedRelatedListError(f"no gRPC call finds a {need.resource} by id")
        charge_id, rule_id = need.ids_in(key)
        request = rpb.GetRuleRequest(id=rule_id)
        if charge_id is not None:
            # As it was when it decided the charge.
            request.decided_charge = charge_id
        try:
            reply = await call(deps.radar.GetRule, request, context)
        except RemitError as error:
            if error.kind is ErrorKind.NOT_FOUND:
                return RelatedPage.whole([])  # deleted since: the charge keeps its id
            raise
        return RelatedPage.whole([to_json(reply.rule)])

    return fetch


async def _first_page(
    list_call: Any, request: Any, context: ApiContext
) -> tuple[list[Any], bool, int]:
    """The first page of a list, whether more follow, and how many there are in all: the
    pages after the first are read only to count them (lists that long are rare)."""
    reply = await call(list_call, request, context)
    first, has_more = list(reply.data), bool(reply.has_more)
    total, page = len(first), reply
    while page.has_more and page.data:
        following = type(request)()
        following.CopyFrom(request)
        following.starting_after = page.data[-1].id
        page = await call(list_call, following, context)
        total += len(page.data)
    return first, has_more, total


def _without_refunds(charge: JsonObject) -> JsonObject:
    charge.pop("refunds", None)
    return charge
