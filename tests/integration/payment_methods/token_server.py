"""The payments gRPC service serving CreateToken alone, over a vault that hands cards over,
for the tests of what CreateToken accepts."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NamedTuple, cast

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.grpcutil.errors import ErrorMappingInterceptor
from remit.payment_methods.service import PaymentMethodsService
from remit.payments.grpc import PaymentsServicer
from remit_api.payments.v1 import payments_pb2_grpc
from tests.integration.payments.test_payment_method_data import HandingOverVault


class TokenServer(NamedTuple):
    stub: Any
    vault: HandingOverVault
    account_id: str


@asynccontextmanager
async def serving_tokens(core_engine: AsyncEngine) -> AsyncIterator[TokenServer]:
    account = await AccountsService(core_engine).create_account()
    vault = HandingOverVault()
    methods = PaymentMethodsService(core_engine, vault)
    # Tokens need neither payments nor customers.
    servicer = PaymentsServicer(cast(Any, None), cast(Any, None), methods)
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    payments_pb2_grpc.add_PaymentsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = payments_pb2_grpc.PaymentsServiceStub(channel)
        yield TokenServer(stub, vault, account.account.id)
    finally:
        await channel.close()
        await server.stop(0)
