"""A confirm cancelled while the network is authorizing it (the core stopping past its grace,
the caller's deadline): the authorization still completes and is recorded, and the key is
released at that point, so a retry replays it rather than sending it again."""

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.payments.domain import Status
from remit.payments.grpc import payment_intent_message
from remit.payments.idempotency import RecoveryPoint
from remit.payments.network import AuthorizationOutcome
from remit.payments.service import PaymentsService
from remit.payments.tables import idempotency_keys
from tests.integration.payments.conftest import FakeMethods
from tests.integration.payments.test_payments_service import pay
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio


class SlowNetwork(FakeNetwork):
    """Authorizations wait for `answer` once received."""

    def __init__(self) -> None:
        super().__init__()
        self.received = asyncio.Event()
        self.answer = asyncio.Event()

    async def authorize(self, **request: object) -> AuthorizationOutcome:
        self.received.set()
        await self.answer.wait()
        return await super().authorize(**request)  # type: ignore[arg-type]


async def test_a_cancelled_confirm_completes_its_authorization_for_the_retry(
    core_engine: AsyncEngine, account_id: str
) -> None:
    network = SlowNetwork()
    payments = PaymentsService(core_engine, network, FakeMethods(), present=payment_intent_message)
    request = asyncio.create_task(pay(payments, account_id, "cut-off"))
    await network.received.wait()
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request

    network.answer.set()
    await payments.drain(30.0)
    async with core_engine.begin() as db:
        key = (
            await db.execute(
                select(idempotency_keys.c.recovery_point, idempotency_keys.c.locked_until).where(
                    idempotency_keys.c.key == "cut-off"
                )
            )
        ).one()
    assert key.recovery_point == RecoveryPoint.AUTHORIZATION_DONE.value
    assert key.locked_until is None, "released for the retry at once"

    retried = await pay(payments, account_id, "cut-off")
    assert retried.status is Status.SUCCEEDED
    assert len(network.sent) == 1, "the retry did not send the authorization again"
    assert network.looked_up == []
