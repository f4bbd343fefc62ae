"""A rule as it was when it decided a charge, for the charge's expanded `outcome.rule`.

A charge's Radar verdict (`charges.risk`, remit.payments.risk) has always held the text of the
rule that decided it (`explanation.rule`, `Block if :risk_score: > 85`), and since core
migration 0057 that rule's version (`explanation.rule_version`, remit.radar.history). A rule
changed since would otherwise show its new predicate on the charges the old one decided. So
the charge's rule shows the action and predicate of that text, and its version then; its id,
position and creation are the rule's own. A rule deleted since is not found, as before: the
charge keeps its id.
"""

from collections.abc import Iterable, Mapping
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.errors import not_found
from remit.payments.risk import RiskVerdict
from remit.payments.tables import charges
from remit.radar.domain import Rule, split_rule_text


async def rule_as_decided(db: AsyncConnection, rule: Rule, charge_id: str) -> Rule:
    """`rule` as it decided the charge; as it is, when the charge names another rule or none,
    or its verdict keeps no text of it. A charge the account does not have is NOT_FOUND."""
    found = (
        await db.execute(
            select(charges.c.risk).where(
                charges.c.account_id == rule.account_id, charges.c.id == charge_id
            )
        )
    ).first()
    if found is None:
        raise not_found("charge", charge_id, param="decided_charge")
    return _as_decided(rule, RiskVerdict.from_json(found.risk))


async def rules_as_decided(
    db: AsyncConnection,
    account_id: str,
    rules: Mapping[str, Rule],
    asked: Iterable[tuple[str | None, str]],
) -> dict[tuple[str | None, str], Rule]:
    """For each (charge id, rule id) asked whose rule is among `rules` (by id), the rule as it
    decided the charge, every charge's verdict read in one query: for a page of charges. With
    no charge id, or a charge the account does not have or that names another rule, the rule
    as it is."""
    pairs = [(charge_id, rule_id) for charge_id, rule_id in asked if rule_id in rules]
    charge_ids = list(dict.fromkeys(charge_id for charge_id, _ in pairs if charge_id is not None))
    verdicts: dict[str | None, RiskVerdict] = {}
    if charge_ids:
        rows = await db.execute(
            select(charges.c.id, charges.c.risk).where(
                charges.c.account_id == account_id, charges.c.id.in_(charge_ids)
            )
        )
        verdicts = {row.id: RiskVerdict.from_json(row.risk) for row in rows}
    return {
        (charge_id, rule_id): (
            _as_decided(rules[rule_id], verdicts[charge_id])
            if charge_id in verdicts
            else rules[rule_id]
        )
        for charge_id, rule_id in pairs
    }


def _as_decided(rule: Rule, verdict: RiskVerdict) -> Rule:
    text = verdict.explanation.get("rule")
    split = split_rule_text(text) if isinstance(text, str) else None
    if verdict.rule_id != rule.id or split is None:
        return rule
    action, predicate = split
    unchanged = (action, predicate) == (rule.action, rule.predicate)
    version = verdict.explanation.get("rule_version")
    if not isinstance(version, int) or isinstance(version, bool):
        # Decided before versions were kept: version 1 is the text the rule had then, when
        # it has never changed since; a rule changed since may have had this text at any
        # version.
        version = 1 if unchanged and rule.version == 1 else None
    return replace(
        rule,
        action=action,
        predicate=predicate,
        version=version,
        # Why the rule does not run now is about its text now.
        invalid_reason=rule.invalid_reason if unchanged else None,
    )
