"""Saving a rule that names a value list and deleting that list, at the same moment: one of
them is refused, and no rule is left naming a list that is gone."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.errors import RemitError
from remit.radar.domain import ItemType, RuleAction, ValueList
from remit.radar.repository import RuleRepository, ValueListRepository
from remit.radar.service import RadarService
from tests.support.locks import until_a_session_waits_on_a_lock

pytestmark = pytest.mark.anyio


class Pause:
    """Holds a step of one transaction at a point until the test lets it go."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.go = asyncio.Event()

    def around(self, step: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def paused(*args: Any, **kwargs: Any) -> Any:
            self.reached.set()
            await self.go.wait()
            return await step(*args, **kwargs)

        return paused


@pytest.fixture
async def account_id(core_engine: AsyncEngine) -> str:
    return (await AccountsService(core_engine).create_account()).account.id


@pytest.fixture
def radar(core_engine: AsyncEngine) -> RadarService:
    return RadarService(core_engine)


async def vips(radar: RadarService, account_id: str) -> ValueList:
    return await radar.create_value_list(
        account_id, alias="vips", name="VIPs", item_type=ItemType.EMAIL
    )


@pytest.mark.parametrize("other_rules", [0, 1])
async def test_a_list_delete_waits_for_a_rule_being_saved_with_it_then_refuses(
    radar: RadarService,
    account_id: str,
    core_engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    other_rules: int,
) -> None:
    value_list = await vips(radar, account_id)
    for _ in range(other_rules):
        await radar.create_rule(account_id, RuleAction.REVIEW, ":risk_score: > 70")
    pause = Pause()
    monkeypatch.setattr(RuleRepository, "insert", pause.around(RuleRepository.insert))
    saving = asyncio.create_task(
        radar.create_rule(account_id, RuleAction.ALLOW, ":email: in @vips")
    )
    await pause.reached.wait()  # checked the list exists, not yet inserted
    deleting = asyncio.create_task(radar.delete_value_list(account_id, value_list.id))
    try:
        await until_a_session_waits_on_a_lock(core_engine, contender=deleting)
    finally:
        pause.go.set()
        rule = await saving
    with pytest.raises(RemitError) as refused:
        await deleting
    assert refused.value.code == "value_list_in_use"
    assert (await radar.get_value_list(account_id, value_list.id))[0].alias == "vips"
    assert (await radar.get_rule(account_id, rule.id)).predicate == ":email: in @vips"


async def test_a_rule_naming_a_list_being_deleted_waits_for_the_delete_then_is_refused(
    radar: RadarService,
    account_id: str,
    core_engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value_list = await vips(radar, account_id)
    pause = Pause()
    monkeypatch.setattr(ValueListRepository, "delete", pause.around(ValueListRepository.delete))
    deleting = asyncio.create_task(radar.delete_value_list(account_id, value_list.id))
    await pause.reached.wait()  # found no rule using the list, not yet deleted
    saving = asyncio.create_task(
        radar.create_rule(account_id, RuleAction.ALLOW, ":email: in @vips")
    )
    try:
        await until_a_session_waits_on_a_lock(core_engine, contender=saving)
    finally:
        pause.go.set()
        await deleting
    with pytest.raises(RemitError) as refused:
        await saving
    assert refused.value.code == "rule_invalid"
    assert "@vips" in refused.value.message
    rules, _ = await radar.list_rules(account_id, limit=10)
    assert rules == []
