"""Whether a rule can run as written: the checks saving a rule makes, applied to stored rules.

Saving a rule refuses it (`rule_invalid`) when it does not parse, names a value list that does
not exist, or tests an attribute against a list that cannot hold its kind of value
(`remit.radar.list_types`). A rule stored before one of those checks existed may fail it all
the same: `:email: not in @blocked_countries` was once accepted, and since no email is ever a
country, its `not in` holds for every payment that has an email.

Such a rule is invalid, and an invalid rule never runs: it matches no payment, the payment path
logs a warning naming it (once per process), and the rules listing shows why
(`invalid_reason`), so an operator can rewrite or delete it. Not evaluating just its faulty
conditions as unknown, in the three-valued logic a missing value gets: a `not` over an `and`
makes unknown-and-false true again, so part of a rule its author never saw run would still
decide payments. An invalid allow rule that ran would let every payment past the block rules
and the built-in block of the highest risk; an invalid block rule that ran would refuse every
payment. Either is worse than the rule doing nothing, which is what its author sees in the
listing.
"""

from collections.abc import Mapping

from remit.radar.domain import ItemType
from remit.radar.list_types import lists_for, may_test
from remit.radar.rules import ParsedPredicate


def list_problem(parsed: ParsedPredicate, item_types: Mapping[str, ItemType]) -> str | None:
    """Why the value lists the predicate names (their item types by alias, for those that
    exist) keep it from running, or None when they do not."""
    missing = parsed.lists - set(item_types)
    if missing:
        return f"The rule refers to a value list that does not exist: @{sorted(missing)[0]}."
    for alias, attributes in sorted(parsed.list_attributes.items()):
        for attribute in sorted(attributes):
            if not may_test(attribute, item_types[alias]):
                return (
                    f":{attribute}: cannot be tested against @{alias}, a list of "
                    f"{item_types[alias].value} values; test it against a list of "
                    f"{lists_for(attribute)} values."
                )
    return None
