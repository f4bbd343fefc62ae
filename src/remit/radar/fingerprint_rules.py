"""Rules that name a card by its fingerprint follow the card to its account's own fingerprint.

A rule can name a card directly (`Block if :card_fingerprint: = 'F'`, or in a set
`:card_fingerprint: in ('F1', 'F2')`) rather than through a `card_fingerprint` value list. When
the core converts an account's copies of card fingerprints to the account's own
(remit.payment_methods.fingerprint_conversion), such a rule naming a card's old fingerprint
would silently stop matching the card. So, in the same transaction as the account's list
items, each string compared with `:card_fingerprint:` that is the old fingerprint of a card of
the account is rewritten to its new one (remit.radar.rules.replace_compared_strings): the same
string compared with another attribute, or in another account's rules, is left as it is, and
so is every other character of the rule.

A rewrite is a change of the rule's predicate like any other: a new version, recorded in
Radar's history as made by remit (remit.radar.history). The payment path compiles a rule anew
once its text changes (remit.radar.gate.CompiledRules), so nothing compiled needs dropping. A
stored rule that no longer parses, or whose rewrite would not, is left as it is, its id logged.
"""

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.radar import history
from remit.radar.history import NOBODY_NAMED, ChangeAction
from remit.radar.repository import RuleRepository
from remit.radar.rules import RuleSyntaxError, parse_predicate, replace_compared_strings

log = logging.getLogger(__name__)

ATTRIBUTE: Final = "card_fingerprint"


async def replace_rule_fingerprints(
    db: AsyncConnection, account_id: str, replaced: Mapping[str, str], at: datetime
) -> int:
    """Rewrite the account's rules comparing `:card_fingerprint:` with a card's old fingerprint
    (`replaced`: old to new, as the vault answered them) to name its new one, in the caller's
    transaction. How many rules changed."""
    if not replaced:
        return 0
    repo = RuleRepository(db)
    # Locked as the rules API locks them, so a concurrent edit of a rule is not overwritten.
    rules = await repo.lock_account_rules(account_id)
    changed = 0
    for rule in rules:
        if f":{ATTRIBUTE}:" not in rule.predicate:
            continue
        try:
            predicate = replace_compared_strings(rule.predicate, ATTRIBUTE, replaced)
            if predicate != rule.predicate:
                # Within every limit a rule is saved under (its length, say).
                parse_predicate(predicate)
        except (RuleSyntaxError, RecursionError):
            log.warning(
                "Radar rule %s of account %s does not parse; any card fingerprint it names is "
                "left as it is",
                rule.id, account_id,
            )  # fmt: skip
            continue
        if predicate == rule.predicate:
            continue
        saved = replace(rule, predicate=predicate, version=(rule.version or 0) + 1)
        await repo.save(saved)
        await history.record_rule(db, NOBODY_NAMED, ChangeAction.UPDATED, rule, saved, at=at)
        changed += 1
    return changed
