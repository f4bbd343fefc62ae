"""A forward the vault refuses because the attempt's reference is recorded for another operation
(`reference_reused`, FAILED_PRECONDITION). The core derives an attempt's reference and its
parameters from the same stored attempt, so the refusal is remit's own error: the client is told
of a server error (500 `api_error`), not of a mistake with its idempotency key, and the attempt
is neither failed as a card the vault will not open nor left to retry the same refusal for ever:
it waits at `attempt_created`, and its next try (the client's retry with the key, or the
completer) asks the network what it holds under the reference before sending anything."""

import pytest
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.errors import error_detail
from remit.payments.domain import CaptureMethod, Status
from remit.payments.grpc import payment_intent_message
from remit.payments.idempotency import KeyRecord, RecoveryPoint
from remit.payments.network import AuthorizationOutcome, OperationOutcome
from remit.payments.service import Done, PaymentsService
from remit.payments.tables import idempotency_keys
from remit.vault.service import reference_reused
from remit_api.acquirer.v1 import acquirer_pb2
from tests.integration.payments.conftest import FakeMethods
from tests.integration.payments.test_payments_service import call, pay, refund_intent, respond
from tests.integration.payments.test_unopenable_card import _pay_again, _recovery_point
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio


class ReferenceRecordedForAnotherOperation(FakeNetwork):
    """The vault holds the attempt's reference for another operation, which reached the
    network: every forward of the reference is refused with the vault's own error."""

    async def authorize(self, **kwargs: object) -> AuthorizationOutcome:
        reference = str(kwargs["reference"])
        if reference not in self.authorizations:
            await super().authorize(**kwargs)  # type: ignore[arg-type]
        raise reference_reused(reference)


async def _refused_attempt(
    core_engine: AsyncEngine, account_id: str, key: str
) -> tuple[PaymentsService, ReferenceRecordedForAnotherOperation, FakeMethods]:
    network = ReferenceRecordedForAnotherOperation()
    methods = FakeMethods()
    payments = PaymentsService(core_engine, network, methods, present=payment_intent_message)
    with pytest.raises(RemitError) as raised:
        await pay(payments, account_id, key)
    error = raised.value
    assert (error.kind, error.error_type, error.code, error.param) == (
        ErrorKind.INTERNAL,
        "api_error",
        None,
        None,
    )
    assert error_detail(error).http_status == 500
    # Not taken for a card the vault will not open: nothing is failed or forgotten.
    assert methods.refused == []
    assert await _recovery_point(core_engine, key) == RecoveryPoint.ATTEMPT_CREATED.value
    assert len(network.sent) == 1
    return payments, network, methods


async def test_the_clients_retry_settles_the_attempt_from_the_networks_record(
    core_engine: AsyncEngine, account_id: str
) -> None:
    payments, network, _ = await _refused_attempt(core_engine, account_id, "held-1")
    again = await _pay_again(payments, account_id, "held-1")
    assert isinstance(again, Done)
    assert again.value.status is Status.SUCCEEDED
    (reference,) = network.authorizations
    assert network.looked_up == [reference]
    assert len(network.sent) == 1, "looked up by reference, never sent again"
    assert await _recovery_point(core_engine, "held-1") == RecoveryPoint.FINISHED.value


async def test_the_completer_settles_it_too(core_engine: AsyncEngine, account_id: str) -> None:
    payments, network, _ = await _refused_attempt(core_engine, account_id, "held-2")
    async with core_engine.begin() as db:
        await db.execute(
            idempotency_keys.update()
            .where(idempotency_keys.c.key == "held-2")
            .values(last_run_at=func.now() - func.make_interval(0, 0, 0, 0, 0, 1))
        )

    async def resume(record: KeyRecord) -> object:
        return await payments.resume_attempt(record, respond)

    assert await payments.complete_abandoned(resume) == 1
    assert await _recovery_point(core_engine, "held-2") == RecoveryPoint.FINISHED.value
    assert len(network.sent) == 1


class OperationsRecordedForOtherParameters(FakeNetwork):
    """The acquirer holds the references of captures, voids and refunds for other operations,
    which it made: it refuses every send of one with `reference_reused`, as it does a reference
    sent again with other parameters, until `refusing` is turned off."""

    refusing = True

    async def _operation(
        self,
        kind: acquirer_pb2.OperationKind.ValueType,
        authorization_id: str,
        reference: str,
        amount_minor: int,
    ) -> OperationOutcome:
        outcome = await super()._operation(kind, authorization_id, reference, amount_minor)
        if self.refusing:
            raise reference_reused(reference)
        return outcome


@pytest.mark.parametrize("operation", ["capture", "cancel", "refund"])
async def test_a_capture_void_or_refund_refused_that_way_is_a_500_and_settles_later(
    core_engine: AsyncEngine, account_id: str, operation: str
) -> None:
    """As for an authorization: a 500, the request waits at its recovery point, and its retry
    with the key settles it from the network's record without sending it again."""
    network = OperationsRecordedForOtherParameters()
    network.refusing = False
    payments = PaymentsService(core_engine, network, FakeMethods(), present=payment_intent_message)
    capture = CaptureMethod.AUTOMATIC if operation == "refund" else CaptureMethod.MANUAL
    intent = await pay(payments, account_id, f"pay-{operation}", capture=capture)
    network.refusing = True

    async def send() -> object:
        if operation == "capture":
            return await payments.capture_payment_intent(
                call(account_id, "op", endpoint="CapturePaymentIntent"), intent.id, 600, respond
            )
        if operation == "cancel":
            return await payments.cancel_payment_intent(
                call(account_id, "op", endpoint="CancelPaymentIntent"), intent.id, None, respond
            )
        return await refund_intent(payments, account_id, "op", intent.id, 400)

    with pytest.raises(RemitError) as raised:
        await send()
    error = raised.value
    assert (error.kind, error.error_type, error.code) == (ErrorKind.INTERNAL, "api_error", None)
    assert error_detail(error).http_status == 500
    assert await _recovery_point(core_engine, "op") != RecoveryPoint.FINISHED.value
    sent = list(network.sent)

    network.refusing = False
    again = await send()
    assert isinstance(again, Done)
    assert network.sent == sent, "looked up by reference, never sent again"
    assert await _recovery_point(core_engine, "op") == RecoveryPoint.FINISHED.value
