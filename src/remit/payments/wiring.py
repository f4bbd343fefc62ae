"""Building the payments service for a process: its network stubs, payment methods, hooks."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.config import PlatformConfig
from remit.payments.grpc import PaymentsServicer, payment_intent_message
from remit.payments.network import GrpcCardNetwork
from remit.payments.ports import HookChain, PaymentMethodSource
from remit.payments.service import PaymentsService
from remit_api.acquirer.v1 import acquirer_pb2_grpc
from remit_api.vault.v1 import vault_pb2_grpc


@dataclass
class PaymentsWiring:
    service: PaymentsService
    servicer: PaymentsServicer
    hooks: HookChain
    vault: vault_pb2_grpc.VaultServiceAsyncStub
    close: Callable[[], Awaitable[None]]


def build_payments(
    engine: AsyncEngine,
    config: PlatformConfig,
    methods: Callable[[vault_pb2_grpc.VaultServiceAsyncStub], PaymentMethodSource],
) -> PaymentsWiring:
    vault_channel = grpc.aio.insecure_channel(config.vault.target)
    acquirer_channel = grpc.aio.insecure_channel(config.acquirer.target)
    vault = vault_pb2_grpc.VaultServiceStub(vault_channel)
    network = GrpcCardNetwork(vault, acquirer_pb2_grpc.AcquirerServiceStub(acquirer_channel))
    hooks = HookChain()
    service = PaymentsService(
        engine, network, methods(vault), present=payment_intent_message, hooks=hooks
    )

    async def close() -> None:
        await vault_channel.close()
        await acquirer_channel.close()

    return PaymentsWiring(service, PaymentsServicer(service), hooks, vault, close)
