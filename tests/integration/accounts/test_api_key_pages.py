"""ListApiKeys pages as every list RPC does: `limit` defaults to 10 and may not exceed 100."""

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

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
