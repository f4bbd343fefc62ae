"""Rules as they are shown: each with why it does not run, when it does not (`invalid_reason`,
remit.radar.validity).

Everything that shows a rule reads it here: the Radar service's rule pages and the charge's
rule the REST facade asks it for, and the charge's rule the core and the webhook worker render
in events (remit.payments.related). A rule that shows why it does not run in one and not in the
other would tell an operator and a webhook endpoint different things about the same charge.
"""

from collections.abc import Iterable, Mapping
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.radar.domain import ItemType, Rule
from remit.radar.gate import compiled, stored_rule_problem
from remit.radar.repository import RuleRepository, ValueListRepository


async def rules_as_listed(
    db: AsyncConnection, account_id: str, rules: Iterable[Rule]
) -> list[Rule]:
    """The rules, in order, each with why it does not run (None when it runs), the item types
    of the value lists they name read in one query."""
    rules = list(rules)
    aliases = {alias for rule in rules for alias in lists_of(rule.predicate)}
    item_types = await ValueListRepository(db).item_types(account_id, aliases)
    return [replace(rule, invalid_reason=_why_not_run(rule, item_types)) for rule in rules]


def _why_not_run(rule: Rule, item_types: Mapping[str, ItemType]) -> str | None:
    """The reason remit recorded when it disabled the rule says more (what, and when) than
    what parsing it again finds; but only while the rule still does not run (a core of the
    version before 0069 changes a predicate without clearing the reason)."""
    problem = stored_rule_problem(rule.predicate, item_types)
    if problem is None:
        return None
    return rule.disabled_reason or problem


async def listed_rules_by_id(
    db: AsyncConnection, account_id: str, rule_ids: Iterable[str]
) -> dict[str, Rule]:
    """The account's rules among `rule_ids`, by id, as listed (ids of no rule left out)."""
    found = await RuleRepository(db).get_many(account_id, rule_ids)
    return {rule.id: rule for rule in await rules_as_listed(db, account_id, found.values())}


def lists_of(predicate: str) -> frozenset[str]:
    """The aliases of the value lists a stored predicate names (none, if it does not compile)."""
    parsed = compiled(predicate)
    return frozenset() if parsed is None else parsed.lists
