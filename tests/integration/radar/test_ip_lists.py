"""IP value lists match a payment's IP however it is spelled, and so do the list filters."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.payments.charges import CardSnapshot
from remit.payments.ports import AttemptFacts
from remit.payments.risk import RiskVerdict
from remit.radar.domain import ItemType, RuleAction
from remit.radar.gate import Radar
from remit.radar.service import RadarService
from remit.radar.tables import radar_counters

pytestmark = pytest.mark.anyio

CARD = CardSnapshot("visa", "4242", 12, 2034, fingerprint="fp_ip", funding="credit", country="US")


@pytest.fixture
async def account_id(core_engine: AsyncEngine) -> str:
    return (await AccountsService(core_engine).create_account()).account.id


async def assess(engine: AsyncEngine, account_id: str, ip: str, n: int = 0) -> RiskVerdict:
    facts = AttemptFacts(
        account_id,
        f"pi_{n}",
        f"ch_{n}",
        1000,
        "usd",
        CARD,
        datetime.now(UTC),
        metadata={"ip_address": ip},
    )
    async with engine.begin() as db:
        return await Radar(challenge_base_url="http://remit.test").assess(db, facts)


async def test_a_listed_ip_blocks_the_payment_however_either_spells_it(
    core_engine: AsyncEngine, account_id: str
) -> None:
    radar = RadarService(core_engine)
    ips = await radar.create_value_list(
        account_id, alias="blocked_ips", name="Blocked IPs", item_type=ItemType.IP_ADDRESS
    )
    await radar.add_item(account_id, ips.id, "203.0.113.5")
    await radar.add_item(account_id, ips.id, "::ffff:198.51.100.7")
    await radar.add_item(account_id, ips.id, "2001:0db8:0000:0000:0000:0000:0000:0001")
    rule = await radar.create_rule(account_id, RuleAction.BLOCK, ":ip_address: in @blocked_ips")
    for n, sent in enumerate(
        ["::ffff:203.0.113.5", "198.51.100.7", "2001:DB8::1", "2001:db8:0:0::1", " 203.0.113.5"]
    ):
        verdict = await assess(core_engine, account_id, sent, n)
        assert (verdict.action, verdict.rule_id) == ("block", rule.id), sent
    assert (await assess(core_engine, account_id, "::ffff:203.0.113.6", 9)).rule_id is None
    assert (await assess(core_engine, account_id, "not an ip", 10)).rule_id is None


async def test_one_address_counts_in_one_velocity_counter_however_it_is_spelled(
    core_engine: AsyncEngine, account_id: str
) -> None:
    for n, sent in enumerate(
        ["2001:db8::1", "2001:0DB8:0:0::1", "203.0.113.5", "::ffff:cb00:7105"]
    ):
        await assess(core_engine, account_id, sent, n)
    async with core_engine.connect() as db:
        rows = await db.execute(
            select(radar_counters.c.key, radar_counters.c.attempts_by_minute).where(
                radar_counters.c.account_id == account_id, radar_counters.c.dimension == "ip"
            )
        )
        counted = {key: sum(minutes) for key, minutes in rows}
    assert counted == {"2001:db8::1": 2, "203.0.113.5": 2}


async def test_the_list_filters_find_an_address_however_it_is_spelled(
    core_engine: AsyncEngine, account_id: str
) -> None:
    radar = RadarService(core_engine)
    ips = await radar.create_value_list(
        account_id, alias="ips", name="IPs", item_type=ItemType.IP_ADDRESS
    )
    mapped = await radar.add_item(account_id, ips.id, "203.0.113.5")
    long = await radar.add_item(account_id, ips.id, "2001:db8::1")
    countries = await radar.create_value_list(
        account_id, alias="countries", name="Countries", item_type=ItemType.COUNTRY
    )
    await radar.add_item(account_id, countries.id, "NG")

    async def items(value: str) -> list[str]:
        found, _ = await radar.list_items(account_id, ips.id, limit=10, value=value)
        return [item.id for item in found]

    async def lists(contains: str) -> list[str]:
        found, _ = await radar.list_value_lists(account_id, limit=10, contains=contains)
        return [value_list.id for value_list, _, _ in found]

    assert await items("::ffff:203.0.113.5") == [mapped.id]
    assert await items("2001:0DB8:0000:0000:0000:0000:0000:0001") == [long.id]
    assert await items("not an ip") == []
    assert await lists("::ffff:203.0.113.5") == [ips.id]
    assert await lists("2001:0db8::0001") == [ips.id]
    assert await lists("ng") == [countries.id]
    assert await lists("192.0.2.1") == []
