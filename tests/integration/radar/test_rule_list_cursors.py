"""ListRules refuses both cursors at once as an invalid argument, before looking either up, with
the message every other list gives (REST refuses the pair before it reaches the core)."""

from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.grpcutil.errors import ErrorMappingInterceptor, remit_error_from_rpc_error
from remit.grpcutil.metadata import ACCOUNT_KEY
from remit.radar.domain import RuleAction
from remit.radar.grpc import RadarServicer, radar_registration
from remit.radar.service import RadarService
from remit_api.radar.v1 import radar_pb2 as rpb
from remit_api.radar.v1 import radar_pb2_grpc

pytestmark = pytest.mark.anyio

BOTH_CURSORS = "starting_after and ending_before cannot be used together."

# The generated stubs type the asyncio flavour separately; it exists only for the checker.
Stub: TypeAlias = "radar_pb2_grpc.RadarServiceAsyncStub"


@pytest.fixture
async def radar(core_engine: AsyncEngine) -> AsyncIterator[Stub]:
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    radar_registration(RadarServicer(RadarService(core_engine))).add_to_server(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield radar_pb2_grpc.RadarServiceStub(channel)
    finally:
        await server.stop(0)


@pytest.fixture
async def account_id(core_engine: AsyncEngine) -> str:
    return (await AccountsService(core_engine).create_account()).account.id


async def _rule_ids(core_engine: AsyncEngine, account_id: str) -> list[str]:
    service = RadarService(core_engine)
    return [
        (await service.create_rule(account_id, RuleAction.BLOCK, predicate)).id
        for predicate in (":amount_in_usd: > 900000", ":card_country: = 'KP'")
    ]


async def test_both_cursors_are_an_invalid_argument_whether_or_not_they_name_rules(
    core_engine: AsyncEngine, radar: Stub, account_id: str
) -> None:
    known = await _rule_ids(core_engine, account_id)
    for starting_after, ending_before in (("rule_unknown", "rule_missing"), tuple(known)):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await radar.ListRules(
                rpb.ListRulesRequest(starting_after=starting_after, ending_before=ending_before),
                metadata=((ACCOUNT_KEY, account_id),),
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
        assert remit_error_from_rpc_error(refused.value).message == BOTH_CURSORS


async def test_the_rules_message_is_the_value_lists_message(radar: Stub, account_id: str) -> None:
    metadata = ((ACCOUNT_KEY, account_id),)
    with pytest.raises(grpc.aio.AioRpcError) as rules:
        await radar.ListRules(
            rpb.ListRulesRequest(starting_after="rule_a", ending_before="rule_b"),
            metadata=metadata,
        )
    with pytest.raises(grpc.aio.AioRpcError) as lists:
        await radar.ListValueLists(
            rpb.ListValueListsRequest(starting_after="rsl_a", ending_before="rsl_b"),
            metadata=metadata,
        )
    assert rules.value.code() == lists.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    shown = [remit_error_from_rpc_error(refused.value) for refused in (rules, lists)]
    rule_error, list_error = [(e.message, e.param, e.code, e.kind) for e in shown]
    assert rule_error == list_error
    assert rule_error[0] == BOTH_CURSORS


async def test_one_cursor_still_pages_through_the_rules(
    core_engine: AsyncEngine, radar: Stub, account_id: str
) -> None:
    first, second = await _rule_ids(core_engine, account_id)
    metadata = ((ACCOUNT_KEY, account_id),)
    after = await radar.ListRules(rpb.ListRulesRequest(starting_after=first), metadata=metadata)
    before = await radar.ListRules(rpb.ListRulesRequest(ending_before=second), metadata=metadata)
    assert [rule.id for rule in after.data] == [second]
    assert [rule.id for rule in before.data] == [first]
