"""ListApiKeys pages as every list RPC does: `limit` defaults to 10 and may not exceed 100, a
cursor must name a key of the account (NOT_FOUND naming it otherwise), and so must the account."""

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.domain import KeyKind
from remit.accounts.service import AccountsService
from remit.grpcutil.errors import remit_error_from_rpc_error
from remit_api.accounts.v1 import accounts_pb2
from tests.integration.accounts.conftest import Stub

pytestmark = pytest.mark.anyio


async def _new_account(core_engine: AsyncEngine) -> str:
    """An account with its first two keys, a secret and a publishable one."""
    return (await AccountsService(core_engine).create_account()).account.id


@pytest.mark.parametrize("limit", [101, 1000, -1])
async def test_a_limit_outside_one_to_a_hundred_is_invalid_argument(
    core_engine: AsyncEngine, stub: Stub, limit: int
) -> None:
    account = await _new_account(core_engine)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ListApiKeys(accounts_pb2.ListApiKeysRequest(account_id=account, limit=limit))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    error = remit_error_from_rpc_error(refused.value)
    assert (error.message, error.param) == ("limit must be between 1 and 100.", "limit")


@pytest.mark.parametrize("limit", [0, 1, 100])
async def test_a_limit_of_at_most_a_hundred_lists_the_keys(
    core_engine: AsyncEngine, stub: Stub, limit: int
) -> None:
    account = await _new_account(core_engine)
    page = await stub.ListApiKeys(accounts_pb2.ListApiKeysRequest(account_id=account, limit=limit))
    shown = min(limit or 10, 2)
    assert (len(page.data), page.has_more) == (shown, shown < 2)


async def _account_with_keys(core_engine: AsyncEngine, more: int) -> tuple[str, list[str]]:
    """An account with its first two keys and `more` secret ones; its key ids newest first, as
    ListApiKeys orders them."""
    service = AccountsService(core_engine)
    account = await _new_account(core_engine)
    for _ in range(more):
        await service.create_key(account, KeyKind.SECRET)
    return account, [key.id for key in reversed(await service.list_keys(account))]


@pytest.mark.parametrize("cursor", ["starting_after", "ending_before"])
async def test_an_unknown_cursor_is_not_found_naming_it(
    core_engine: AsyncEngine, stub: Stub, cursor: str
) -> None:
    account, _ = await _account_with_keys(core_engine, 0)
    _other, others = await _account_with_keys(core_engine, 0)
    for unknown in ("key_unknown", others[0]):  # another account's key is unknown here too
        request = accounts_pb2.ListApiKeysRequest(account_id=account)
        setattr(request, cursor, unknown)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ListApiKeys(request)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        error = remit_error_from_rpc_error(refused.value)
        assert (error.message, error.param) == (f"No such api_key: '{unknown}'", cursor)


async def test_the_keys_of_an_unknown_account_are_not_found(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ListApiKeys(accounts_pb2.ListApiKeysRequest(account_id="acct_unknown"))
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert remit_error_from_rpc_error(refused.value).message == "No such account: 'acct_unknown'"


async def test_both_cursors_at_once_are_refused(core_engine: AsyncEngine, stub: Stub) -> None:
    account, ids = await _account_with_keys(core_engine, 0)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ListApiKeys(
            accounts_pb2.ListApiKeysRequest(
                account_id=account, starting_after=ids[0], ending_before=ids[1]
            )
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_pages_walk_forward_and_back_through_the_keys(
    core_engine: AsyncEngine, stub: Stub
) -> None:
    account, ids = await _account_with_keys(core_engine, 5)  # seven keys
    first = await stub.ListApiKeys(accounts_pb2.ListApiKeysRequest(account_id=account, limit=3))
    assert ([key.id for key in first.data], first.has_more) == (ids[:3], True)
    second = await stub.ListApiKeys(
        accounts_pb2.ListApiKeysRequest(account_id=account, limit=3, starting_after=ids[2])
    )
    assert ([key.id for key in second.data], second.has_more) == (ids[3:6], True)
    # Back from the last key: the three just before it, not the three newest.
    back = await stub.ListApiKeys(
        accounts_pb2.ListApiKeysRequest(account_id=account, limit=3, ending_before=ids[6])
    )
    assert ([key.id for key in back.data], back.has_more) == (ids[3:6], True)
    newest = await stub.ListApiKeys(
        accounts_pb2.ListApiKeysRequest(account_id=account, limit=3, ending_before=ids[3])
    )
    assert ([key.id for key in newest.data], newest.has_more) == (ids[:3], False)


async def test_a_key_revoked_since_its_page_still_serves_as_the_cursor(
    core_engine: AsyncEngine, stub: Stub
) -> None:
    account, ids = await _account_with_keys(core_engine, 2)  # four keys
    first = await stub.ListApiKeys(accounts_pb2.ListApiKeysRequest(account_id=account, limit=2))
    await AccountsService(core_engine).revoke_key(account, first.data[-1].id)
    rest = await stub.ListApiKeys(
        accounts_pb2.ListApiKeysRequest(account_id=account, limit=2, starting_after=ids[1])
    )
    assert ([key.id for key in rest.data], rest.has_more) == (ids[2:], False)
