"""The payments gRPC service serving CreateToken alone, over a vault that hands cards over,
for the tests of what CreateToken accepts."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NamedTuple, cast

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.payment_methods.service import PaymentMethodsService
from remit.payments.disputing import DisputesService
from remit.payments.grpc import PaymentsServicer
from tests.integration.payments.test_payment_method_data import HandingOverVault
from tests.support.payments_server import serving_payments


class _TokensOnly:
    """In the payments service's place: tokens need none of it, but the servicer takes the
    disputes' service from it when it is made."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def disputes(self) -> DisputesService:
        return DisputesService(self._engine)


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
    servicer = PaymentsServicer(cast(Any, _TokensOnly(core_engine)), cast(Any, None), methods)
    async with serving_payments(servicer) as stub:
        yield TokenServer(stub, vault, account.account.id)
