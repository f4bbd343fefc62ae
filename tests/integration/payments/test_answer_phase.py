"""Recovery point `authorization_done` is one statement; it must keep the transaction's guards:
a request whose key was taken over while it waited on the network writes nothing."""

from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.errors import RemitError
from remit.payments.charges import ChargeStatus
from remit.payments.domain import NewPaymentIntent, PaymentIntent
from remit.payments.grpc import payment_intent_message
from remit.payments.idempotency import RecoveryPoint
from remit.payments.network import AuthorizationOutcome
from remit.payments.service import ConfirmParams, Done, PaymentsService, Replay
from remit.payments.tables import charges, idempotency_keys
from tests.integration.payments.conftest import FakeMethods, take_key_over
from tests.integration.payments.test_payments_service import call, respond
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio


class NetworkWithInterlude(FakeNetwork):
    """Answers like FakeNetwork, after running `interlude` while the authorization is out:
    what another request might do to the key in the meantime."""

    def __init__(self, interlude: Callable[[], Awaitable[None]]) -> None:
        super().__init__()
        self._interlude = interlude

    async def authorize(self, **kwargs: object) -> AuthorizationOutcome:
        await self._interlude()
        return await super().authorize(**kwargs)  # type: ignore[arg-type]


async def _key_and_charge(engine: AsyncEngine, key: str) -> tuple[str, object]:
    async with engine.begin() as db:
        row = (
            await db.execute(
                select(idempotency_keys.c.recovery_point, idempotency_keys.c.charge_id).where(
                    idempotency_keys.c.key == key
                )
            )
        ).one()
        answer = (
            await db.execute(select(charges.c.network_result).where(charges.c.id == row.charge_id))
        ).scalar_one()
    return row.recovery_point, answer


def _confirm(payments: PaymentsService, account_id: str, key: str) -> Awaitable[object]:
    return payments.create_payment_intent(
        call(account_id, key, body=b"answer-phase"),
        NewPaymentIntent(amount_minor=700, currency="usd"),
        respond,
        confirm=ConfirmParams(payment_method_id="pm_visa"),
    )


async def test_the_answer_and_the_recovery_point_are_written_together(
    core_engine: AsyncEngine, account_id: str
) -> None:
    network = FakeNetwork()
    payments = PaymentsService(core_engine, network, FakeMethods(), present=payment_intent_message)
    result = await _confirm(payments, account_id, "together")
    assert isinstance(result, Done)
    point, answer = await _key_and_charge(core_engine, "together")
    assert point == RecoveryPoint.FINISHED.value
    assert isinstance(answer, dict)
    assert answer["approved"] is True
    assert isinstance(result.value, PaymentIntent)
    charge, _ = await payments.get_charge(account_id, result.value.latest_charge_id or "")
    assert charge.status is ChargeStatus.SUCCEEDED


async def test_a_key_taken_over_during_the_network_call_is_left_to_its_new_owner(
    core_engine: AsyncEngine, account_id: str
) -> None:
    async def take_over() -> None:
        # The lease ran out and a retry claimed the key (a new owner token).
        await take_key_over(core_engine, "taken")

    network = NetworkWithInterlude(take_over)
    payments = PaymentsService(core_engine, network, FakeMethods(), present=payment_intent_message)
    with pytest.raises(RemitError) as raised:
        await _confirm(payments, account_id, "taken")
    assert raised.value.code == "idempotency_key_in_use"
    point, answer = await _key_and_charge(core_engine, "taken")
    assert point == RecoveryPoint.ATTEMPT_CREATED.value
    assert answer is None, "the answer belongs to whoever owns the key now"
    assert len(network.sent) == 1


async def test_a_key_finished_by_another_request_meanwhile_is_replayed_not_rewritten(
    core_engine: AsyncEngine, account_id: str
) -> None:
    async def finish_elsewhere() -> None:
        # The lease ran out and a retry took the key over and finished it.
        await take_key_over(core_engine, "finished", finished_with=b"finished elsewhere")

    network = NetworkWithInterlude(finish_elsewhere)
    payments = PaymentsService(core_engine, network, FakeMethods(), present=payment_intent_message)
    result = await _confirm(payments, account_id, "finished")
    assert isinstance(result, Replay)
    assert result.body == b"finished elsewhere"
    point, answer = await _key_and_charge(core_engine, "finished")
    assert point == RecoveryPoint.FINISHED.value
    assert answer is None
