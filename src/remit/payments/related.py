"""The related lists old API versions embed (a PaymentIntent's `charges`, a Charge's `refunds`),
the objects they show expanded (a Charge's Radar rule), and the payment methods payment errors
show as objects, read from the core database; and the event renderer built on them.

The webhook worker and the core render events for endpoints and accounts pinned before
2022-11-15 this way (the REST facade fetches the same lists over gRPC). The lists hold what
existed when the event happened (objects created later are left out); the objects in them are
shown as they are now, since remit keeps no history of each object's states. A charge's Radar
rule is the exception: it is shown as it was when it decided the charge, which the charge keeps
(remit.radar.decided).
"""

import copy
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.jsonview import JsonObject, to_json
from remit.core.payment_errors import (
    FetchPaymentMethods,
    expand_payment_methods,
    unexpanded_payment_errors,
)
from remit.payment_methods.grpc import payment_method_message
from remit.payment_methods.repository import SqlPaymentMethodRepository
from remit.payments.embedded_budget import EMBEDDED_ANSWER_BYTES
from remit.payments.events import charge_json
from remit.payments.grpc import refund_message
from remit.payments.repository import ChargeRepository, ItemBudget, RefundRepository
from remit.radar.decided import rules_as_decided
from remit.radar.listed import listed_rules_by_id
from remit.radar.messages import rule_message
from remit.storage.pagination import CreatedBounds
from remit.versioning import (
    MAX_EMBEDDED,
    Fetch,
    Need,
    RelatedObject,
    RelatedPage,
    gather_related,
    render_event,
)
from remit.webhooks.domain import Event
from remit.webhooks.rendering import Renderer


class UnsupportedRelatedListError(LookupError):
    pass


def database_fetch(
    engine: AsyncEngine,
    account_id: str,
    *,
    as_of: datetime,
    embedded_bytes: int = EMBEDDED_ANSWER_BYTES,
) -> Fetch:
    """Lists the related objects of one account that existed at `as_of`, latest schema: for
    all the parents asked at once (a page and, for lists longer than a page, their counts).

    The lists this fetch answers take `embedded_bytes` at most together, counted as
    remit.payments.embedded_budget counts the facade's lists: they travel in answers too
    (GetEvent and ListEvents answer events rendered with them, and a webhook carries them), and
    100 refunds at Stripe's metadata limits in 4-byte characters take ~11 MB, so that one
    charge.refunded event could not reach the facade. The lists are cut between items, newest
    first (`ItemBudget`): a list cut short says `has_more`, and its `url` lists the rest. One
    fetch serves one event's rendering, whose lists share the budget, level by level."""
    existing = CreatedBounds(lte=as_of)
    spent = 0

    async def fetch(need: Need, keys: Sequence[str]) -> Mapping[str, RelatedPage]:
        nonlocal spent
        async with engine.begin() as db:
            if isinstance(need, RelatedObject) and need.resource == "rule":
                # As each decided its charge, when the key names one, all read at once; one
                # deleted since is gone. Read as the REST facade's (remit.radar.listed): one
                # that does not run now says why.
                asked = {key: need.ids_in(key) for key in keys}
                rules = await listed_rules_by_id(
                    db, account_id, [rule_id for _, rule_id in asked.values()]
                )
                found = await rules_as_decided(db, account_id, rules, asked.values())
                return {
                    key: RelatedPage.whole(
                        [to_json(rule_message(found[pair]))] if pair in found else []
                    )
                    for key, pair in asked.items()
                }
            if isinstance(need, RelatedObject):
                raise UnsupportedRelatedListError(
                    f"the core database does not find a {need.resource} by id"
                )
            match (need.resource, need.filter_param):
                case ("charge", "payment_intent"):
                    charges = await ChargeRepository(db).first_pages_of_intents(
                        account_id,
                        keys,
                        limit=MAX_EMBEDDED,
                        created=existing,
                        budget=ItemBudget(embedded_bytes - spent),
                    )
                    spent += charges.answered_bytes
                    return {
                        intent_id: RelatedPage(
                            [charge_json(charge) for charge in page.first],
                            has_more=page.has_more,
                            total_count=page.total_count,
                        )
                        for intent_id, page in charges.pages.items()
                    }
                case ("refund", "charge"):
                    refunds = await RefundRepository(db).first_pages_of_charges(
                        account_id,
                        keys,
                        limit=MAX_EMBEDDED,
                        created=existing,
                        budget=ItemBudget(embedded_bytes - spent),
                    )
                    spent += refunds.answered_bytes
                    return {
                        charge_id: RelatedPage(
                            [to_json(refund_message(refund)) for refund in page.first],
                            has_more=page.has_more,
                            total_count=page.total_count,
                        )
                        for charge_id, page in refunds.pages.items()
                    }
        raise UnsupportedRelatedListError(
            f"the core database does not list {need.resource} by {need.filter_param}"
        )

    return fetch


def database_payment_methods(engine: AsyncEngine, account_id: str) -> FetchPaymentMethods:
    """Finds payment methods of one account by id, latest schema. Each is shown as it is now
    (a detached one included), not as it was when the event happened: remit keeps no history
    of a payment method's states, and its card's brand and last four digits never change."""

    async def fetch(method_ids: Collection[str]) -> Mapping[str, JsonObject]:
        async with engine.begin() as db:
            found = await SqlPaymentMethodRepository(db).get_many(account_id, method_ids)
        return {
            method_id: to_json(payment_method_message(method))
            for method_id, method in found.items()
        }

    return fetch


def event_renderer(engine: AsyncEngine) -> Renderer:
    """Renders stored events at a version (the latest included), with the related lists and
    the payment methods it needs from `engine`."""

    async def render(event: Event, body: JsonObject, version: str) -> JsonObject:
        expanded = body
        if unexpanded_payment_errors(body):
            # Expanded on a copy: the stored event's data is shared by every rendering of it.
            # Most events name no payment error and are rendered without one.
            expanded = copy.deepcopy(body)
            await expand_payment_methods(
                expanded, database_payment_methods(engine, event.account_id)
            )
        fetch = database_fetch(engine, event.account_id, as_of=event.created_at)
        return render_event(expanded, version, await gather_related(expanded, version, fetch))

    return render
