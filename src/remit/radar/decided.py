"""A rule as it was when it decided a charge, for the charge's expanded `outcome.rule`.

A charge's Radar verdict (`charges.risk`, remit.payments.risk) has always held the text of the
rule that decided it (`explanation.rule`, `Block if :risk_score: > 85`), and since core
migration 0053 that rule's version (`explanation.rule_version`, remit.radar.history). A rule
changed since would otherwise show its new predicate on the charges the old one decided. So
the charge's rule shows the action and predicate of that text, and its version then; its id,
position and creation are the rule's own. A rule deleted since is not found, as before: the
charge keeps its id.
"""

from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.errors import not_found
from remit.payments.risk import RiskVerdict
from remit.payments.tables import charges
from remit.radar.domain import Rule, split_rule_text


async def rule_as_decided(
    db: AsyncConnection, rule: Rule, charge_id: str, *, missing_charge_ok: bool = False
) -> Rule:
    """`rule` as it decided the charge; as it is, when the charge names another rule or none,
    or its verdict keeps no text of it. A charge the account does not have is NOT_FOUND, or,
    `missing_charge_ok`, the rule as it is."""
    found = (
        await db.execute(
            select(charges.c.risk).where(
                charges.c.account_id == rule.account_id, charges.c.id == charge_id
            )
        )
    ).first()
    if found is None:
        if missing_charge_ok:
            return rule
        raise not_found("charge", charge_id, param="decided_charge")
    return _as_decided(rule, RiskVerdict.from_json(found.risk))


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
