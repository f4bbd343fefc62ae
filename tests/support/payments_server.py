"""A real gRPC server of one PaymentsServicer, with the error mapping the core process
installs, and a stub to call it through."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc

from remit.grpcutil.errors import ErrorMappingInterceptor
from remit.payments.grpc import PaymentsServicer
from remit_api.payments.v1 import payments_pb2_grpc


@asynccontextmanager
async def serving_payments(servicer: PaymentsServicer) -> AsyncIterator[Any]:
    """A PaymentsServiceStub on a local port, the server stopped when the block ends."""
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    payments_pb2_grpc.add_PaymentsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield payments_pb2_grpc.PaymentsServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(0)
