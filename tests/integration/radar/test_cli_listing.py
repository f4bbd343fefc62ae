"""`remit radar rules list` and `remit radar lists list` print everything, not one page."""

import argparse
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.config import TOKEN_ENV, from_env
from remit.grpcutil.errors import ErrorMappingInterceptor
from remit.grpcutil.metadata import ACCOUNT_KEY
from remit.radar import tools
from remit.radar.domain import ItemType, Rule, RuleAction, ValueList
from remit.radar.grpc import RadarServicer
from remit.radar.repository import RuleRepository, ValueListRepository
from remit.radar.service import MAX_RULES, RadarService
from remit_api.radar.v1 import radar_pb2_grpc
from tests.support.ports import free_port

pytestmark = pytest.mark.anyio

START = datetime(2026, 3, 1, tzinfo=UTC)
LISTS = 230


@pytest.fixture
async def account_id(core_engine: AsyncEngine) -> str:
    account = (await AccountsService(core_engine).create_account()).account.id
    async with core_engine.begin() as db:
        rules = RuleRepository(db)
        for n in range(MAX_RULES):
            await rules.insert(
                Rule(f"rule_{n:03d}", account, RuleAction.BLOCK, f":risk_score: > {n}", n, START)
            )
        lists = ValueListRepository(db)
        for n in range(LISTS):
            await lists.insert(
                ValueList(
                    f"vl_{n:03d}",
                    account,
                    f"list_{n:03d}",
                    f"List {n}",
                    ItemType.STRING,
                    START + timedelta(seconds=n),
                    "remit",
                )
            )
    return account


async def test_the_listing_commands_print_every_rule_and_every_list(
    core_engine: AsyncEngine, account_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    radar_pb2_grpc.add_RadarServiceServicer_to_server(
        RadarServicer(RadarService(core_engine)), server
    )
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()

    async def metadata(_channel: grpc.aio.Channel, _api_key: str) -> tuple[tuple[str, str], ...]:
        return ((ACCOUNT_KEY, account_id),)

    monkeypatch.setattr(tools, "account_metadata", metadata)
    config = from_env(
        {
            "REMIT_DATA_DIR": str(tmp_path),
            "REMIT_CORE_HOST": "127.0.0.1",
            "REMIT_CORE_PORT": str(port),
            TOKEN_ENV: "t" * 32,
        }
    )
    try:
        rules_out, lists_out = io.StringIO(), io.StringIO()
        rules = argparse.Namespace(radar_group="rules", radar_command="list")
        assert await tools.run_command(config, rules, "sk_test_x", rules_out) == 0
        lists = argparse.Namespace(radar_group="lists", radar_command="list")
        assert await tools.run_command(config, lists, "sk_test_x", lists_out) == 0
    finally:
        await server.stop(0)
    printed_rules = [line.split("\t") for line in rules_out.getvalue().splitlines()]
    assert [(p, i) for p, i, *_ in printed_rules] == [
        (str(n), f"rule_{n:03d}") for n in range(MAX_RULES)
    ]
    printed_lists = sorted(line.split("\t")[0] for line in lists_out.getvalue().splitlines())
    assert printed_lists == [f"vl_{n:03d}" for n in range(LISTS)]
