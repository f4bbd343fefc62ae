"""The core database's look-up of the Radar rule a charge names, for events rendered before
2017-02-14 (which show the rule as an object): found as it is now, or gone once deleted."""

from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.jsonview import to_json
from remit.payments.related import database_fetch
from remit.radar.domain import Rule, RuleAction
from remit.radar.messages import rule_message
from remit.radar.repository import RuleRepository
from versions.v2017_02_14 import RULE_OF_CHARGE

pytestmark = pytest.mark.anyio


async def test_a_rule_is_found_by_id_within_its_account_and_not_once_deleted(
    core_engine: AsyncEngine, account_id: str
) -> None:
    now = datetime.now(UTC)
    rule = Rule(id="rule_1Large", account_id=account_id, action=RuleAction.BLOCK,
                predicate=":amount_in_usd: > 1000", position=0, created_at=now)  # fmt: skip
    async with core_engine.begin() as db:
        await RuleRepository(db).insert(rule)

    fetch = database_fetch(core_engine, account_id, as_of=now)
    found = await fetch(RULE_OF_CHARGE, [rule.id, "rule_missing"])
    assert (found[rule.id].data, found[rule.id].has_more) == ([to_json(rule_message(rule))], False)
    assert found["rule_missing"].data == []
    elsewhere = database_fetch(core_engine, "acct_other", as_of=now)
    assert (await elsewhere(RULE_OF_CHARGE, [rule.id]))[rule.id].data == []

    async with core_engine.begin() as db:
        await RuleRepository(db).delete(account_id, rule.id)
    gone = await fetch(RULE_OF_CHARGE, [rule.id])
    assert gone[rule.id].data == []
