"""An AccountsService served over real gRPC, for the tests of its RPCs."""

from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.grpc import accounts_registration
from remit.accounts.service import AccountsService
from remit.grpcutil.errors import ErrorMappingInterceptor
from remit_api.accounts.v1 import accounts_pb2_grpc

# The generated stubs type the asyncio flavour separately; it exists only for the checker.
Stub: TypeAlias = "accounts_pb2_grpc.AccountsServiceAsyncStub"


@pytest.fixture
async def stub(core_engine: AsyncEngine) -> AsyncIterator[Stub]:
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    accounts_registration(AccountsService(core_engine)).add_to_server(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield accounts_pb2_grpc.AccountsServiceStub(channel)
    finally:
        await server.stop(0)
