"""The REST facade's `fetch` for the versioning layer: lists the related objects old API
versions embed (a PaymentIntent's charges, a Charge's refunds), and finds those they show
expanded (a Charge's Radar rule), over gRPC, on behalf of the caller's account. Each is asked
for many parents at once (all the intents of a page, all their charges), so a list at an old
version costs a few calls, not a few per object; the core counts each list's `total_count` in
the same call. Lists too large for one answer take more calls (remit.rest.embedded_lists)."""

from collections.abc import Mapping, Sequence
from typing import Final

from remit.accounts.domain import KeyKind
from remit.core.jsonview import JsonObject, to_json
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.embedded_lists import charges_of_intents, refunds_of_charges
from remit.rest.grpc_call import call
from remit.versioning import Fetch, Need, RelatedObject, RelatedPage
from remit_api.radar.v1 import radar_pb2 as rpb

IDS_PER_CALL: Final = 100
"""The core answers for at most this many parents (a page of them) per call."""


class UnsupportedRelatedListError(LookupError):
    pass


async def _nothing(need: Need, keys: Sequence[str]) -> Mapping[str, RelatedPage]:
    return {key: RelatedPage.whole([]) for key in keys}


def related_fetch(deps: Dependencies, context: ApiContext) -> Fetch:
    if context.principal.key_kind is KeyKind.PUBLISHABLE:
        # What a publishable key sees of an intent leaves these lists out (rest.publishable):
        # fetching them would be calls for nothing, on every poll of a payment page.
        return _nothing

    async def fetch(need: Need, keys: Sequence[str]) -> Mapping[str, RelatedPage]:
        found: dict[str, RelatedPage] = {}
        for start in range(0, len(keys), IDS_PER_CALL):
            found.update(await fetch_some(need, keys[start : start + IDS_PER_CALL]))
        return found

    async def fetch_some(need: Need, keys: Sequence[str]) -> Mapping[str, RelatedPage]:
        if isinstance(need, RelatedObject):
            return await _rules(need, keys)
        match (need.resource, need.filter_param):
            case ("charge", "payment_intent"):
                return await _charges_of_intents(keys)
            case ("refund", "charge"):
                return await _refunds_of_charges(keys)
        raise UnsupportedRelatedListError(
            f"no gRPC call lists {need.resource} by {need.filter_param}"
        )

    async def _charges_of_intents(keys: Sequence[str]) -> Mapping[str, RelatedPage]:
        pages = await charges_of_intents(deps, context, keys)
        # As listed at the latest schema: without `refunds`, which the version that embeds the
        # charges adds back in its own shape (gathered in turn).
        return {
            intent_id: RelatedPage(
                [_without_refunds(to_json(charge)) for charge in page.data],
                has_more=page.has_more,
                total_count=page.total_count,
            )
            for intent_id, page in pages.items()
        }

    async def _refunds_of_charges(keys: Sequence[str]) -> Mapping[str, RelatedPage]:
        pages = await refunds_of_charges(deps, context, keys)
        return {
            charge_id: RelatedPage(
                [to_json(refund) for refund in page.data],
                has_more=page.has_more,
                total_count=page.total_count,
            )
            for charge_id, page in pages.items()
        }

    async def _rules(need: RelatedObject, keys: Sequence[str]) -> Mapping[str, RelatedPage]:
        if need.resource != "rule":
            raise UnsupportedRelatedListError(f"no gRPC call finds a {need.resource} by id")
        asked = rpb.GetRulesRequest()
        for key in keys:
            charge_id, rule_id = need.ids_in(key)
            if charge_id is None:
                asked.ids.append(rule_id)
            else:
                # As it was when it decided the charge.
                asked.decided.add(rule=rule_id, charge=charge_id)
        reply = await call(deps.radar.GetRules, asked, context)
        rules = {rule.id: to_json(rule) for rule in reply.rules}
        rules.update(
            (need.key_of(found.charge, found.rule.id), to_json(found.rule))
            for found in reply.decided
        )
        # A rule deleted since is not among them: the charge keeps its id.
        return {key: RelatedPage.whole([rules[key]] if key in rules else []) for key in keys}

    return fetch


def _without_refunds(charge: JsonObject) -> JsonObject:
    charge.pop("refunds", None)
    return charge
