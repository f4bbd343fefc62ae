"""An account's value lists each have their own alias, and a list holds each value once. A
create that loses a race for an alias gets the refusal a duplicate that came alone gets (not
a 500 from the unique constraint), and over gRPC a duplicate alias or value is ALREADY_EXISTS,
which the REST API answers with the 400 invalid_request_error it always did."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.errors import RemitError
from remit.grpcutil.errors import ErrorMappingInterceptor, detail_from_rpc_error
from remit.grpcutil.metadata import ACCOUNT_KEY
from remit.radar import history
from remit.radar.domain import ItemType, ValueList
from remit.radar.grpc import RadarServicer
from remit.radar.repository import ValueListRepository
from remit.radar.service import RadarService
from remit_api.radar.v1 import radar_pb2 as rpb
from remit_api.radar.v1 import radar_pb2_grpc
from tests.support.locks import until_a_session_waits_on_a_lock

pytestmark = pytest.mark.anyio


class FirstCallPaused:
    """Holds the first call of a step until the test lets it go; later calls run through."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.go = asyncio.Event()

    def around(self, step: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def paused(*args: Any, **kwargs: Any) -> Any:
            if not self.reached.is_set():
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


async def _vips(radar: RadarService, account_id: str, name: str) -> ValueList:
    return await radar.create_value_list(
        account_id, alias="vips", name=name, item_type=ItemType.EMAIL
    )


def _seen(error: RemitError) -> tuple[object, ...]:
    return (error.kind, error.error_type, error.code, error.param, error.message)


async def _refused_alone(radar: RadarService, account_id: str) -> RemitError:
    with pytest.raises(RemitError) as refused:
        await _vips(radar, account_id, "Again")
    return refused.value


async def _only_list(radar: RadarService, account_id: str) -> ValueList:
    ((only, _, _),), _ = await radar.list_value_lists(account_id, limit=10)
    changes, _ = await radar.list_changes(account_id, limit=10)
    assert [(c.action.value, c.object_id) for c in changes] == [("created", only.id)]
    return only


async def test_a_create_that_looked_before_the_other_inserted_is_refused_as_a_duplicate(
    radar: RadarService, account_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pause = FirstCallPaused()
    monkeypatch.setattr(ValueListRepository, "insert", pause.around(ValueListRepository.insert))
    first = asyncio.create_task(_vips(radar, account_id, "First"))
    await pause.reached.wait()  # found no list of the alias, not inserted yet
    second = await _vips(radar, account_id, "Second")
    pause.go.set()
    with pytest.raises(RemitError) as refused:
        await first
    assert _seen(refused.value) == _seen(await _refused_alone(radar, account_id))
    assert (await _only_list(radar, account_id)).id == second.id


async def test_a_create_waiting_on_the_other_s_uncommitted_list_is_refused_once_it_commits(
    radar: RadarService,
    account_id: str,
    core_engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pause = FirstCallPaused()
    monkeypatch.setattr(history, "record", pause.around(history.record))
    first = asyncio.create_task(_vips(radar, account_id, "First"))
    await pause.reached.wait()  # inserted, not committed
    second = asyncio.create_task(_vips(radar, account_id, "Second"))
    try:
        # It found no list (the first is not committed) and waits on the alias's index entry.
        await until_a_session_waits_on_a_lock(core_engine, contender=second)
    finally:
        pause.go.set()
        made = await first
    with pytest.raises(RemitError) as refused:
        await second
    assert _seen(refused.value) == _seen(await _refused_alone(radar, account_id))
    assert (await _only_list(radar, account_id)).id == made.id


@pytest.fixture
async def stub(core_engine: AsyncEngine) -> AsyncIterator[radar_pb2_grpc.RadarServiceAsyncStub]:
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    radar_pb2_grpc.add_RadarServiceServicer_to_server(
        RadarServicer(RadarService(core_engine)), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield radar_pb2_grpc.RadarServiceStub(channel)
    finally:
        await server.stop(0)


async def test_over_grpc_a_duplicate_alias_or_value_is_already_exists_and_a_rest_400(
    stub: radar_pb2_grpc.RadarServiceAsyncStub, account_id: str
) -> None:
    metadata = ((ACCOUNT_KEY, account_id),)
    create = rpb.CreateValueListRequest(
        alias="vips", name="VIPs", item_type=rpb.VALUE_LIST_ITEM_TYPE_EMAIL
    )
    made = (await stub.CreateValueList(create, metadata=metadata)).value_list
    add = rpb.AddValueListItemRequest(value_list=made.id, value="ada@example.com")
    await stub.AddValueListItem(add, metadata=metadata)
    again = rpb.AddValueListItemRequest(value_list=made.id, value="Ada@Example.com")

    for call, param in (
        (stub.CreateValueList(create, metadata=metadata), "alias"),
        (stub.AddValueListItem(again, metadata=metadata), "value"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() is grpc.StatusCode.ALREADY_EXISTS
        detail = detail_from_rpc_error(refused.value)
        assert detail is not None
        assert (detail.http_status, detail.type, detail.code, detail.param) == (
            400,
            "invalid_request_error",
            "parameter_invalid",
            param,
        )
