"""An attempt whose card the vault will not open any more (its token deleted through the vault's
admin API after the attempt was made) ends as a failed attempt that was never sent to the
network, instead of staying at `attempt_created`, where every retry and the completer would
fail the same way for ever. A forward that did reach the network before stands."""

import grpc
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.acquirer.service import reference_reused
from remit.core.errors import ErrorKind, RemitError
from remit.payments.charges import ChargeStatus
from remit.payments.domain import NewPaymentIntent, Status
from remit.payments.grpc import payment_intent_message
from remit.payments.idempotency import RecoveryPoint
from remit.payments.network import UNUSABLE_CARD_CODE, AuthorizationOutcome
from remit.payments.service import ConfirmParams, Done, PaymentsService, Replay
from remit.payments.tables import idempotency_keys
from remit.vault.crypto import tampered
from tests.integration.payments.conftest import FakeMethods
from tests.integration.payments.test_payments_service import call, pay, respond
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio


async def _pay_again(payments: PaymentsService, account_id: str, key: str) -> object:
    """What `pay` sends, returning a replay instead of failing on it."""
    return await payments.create_payment_intent(
        call(account_id, key, body=b"pm_visa1000CaptureMethod.AUTOMATIC"),
        NewPaymentIntent(amount_minor=1000, currency="usd"),
        respond,
        confirm=ConfirmParams(payment_method_id="pm_visa"),
    )


async def _refused_payment(
    engine: AsyncEngine, network: FakeNetwork, account_id: str, key: str
) -> tuple[FakeMethods, PaymentsService, pytest.ExceptionInfo[RemitError]]:
    """Pays through `network` under `key`, which must be refused: the payment methods told of
    refused cards, the service to retry with, and the refusal."""
    methods = FakeMethods()
    payments = PaymentsService(engine, network, methods, present=payment_intent_message)
    with pytest.raises(RemitError) as raised:
        await pay(payments, account_id, key)
    return methods, payments, raised


async def _recovery_point(engine: AsyncEngine, key: str) -> str:
    async with engine.connect() as db:
        point = await db.scalar(
            select(idempotency_keys.c.recovery_point).where(idempotency_keys.c.key == key)
        )
    return str(point)


async def test_a_card_the_vault_will_not_open_fails_the_attempt_without_the_network(
    core_engine: AsyncEngine, account_id: str
) -> None:
    network = FakeNetwork(unopenable={"visa"})
    methods, payments, raised = await _refused_payment(core_engine, network, account_id, "gone-1")
    # The payment methods are told, so no test id resolves to that card again.
    assert methods.refused == [(account_id, "visa")]
    error = raised.value
    assert (error.kind, error.error_type, error.code) == (
        ErrorKind.CARD_DECLINED,
        "card_error",
        UNUSABLE_CARD_CODE,
    )
    assert error.charge is not None
    charge, _ = await payments.get_charge(account_id, error.charge)
    assert charge.status is ChargeStatus.FAILED
    assert charge.failure_code == UNUSABLE_CARD_CODE
    assert charge.authorization_id is None
    assert charge.outcome is not None
    assert (charge.outcome["type"], charge.outcome["network_status"]) == (
        "invalid",
        "not_sent_to_network",
    )
    intent = await payments.get_payment_intent(account_id, charge.payment_intent_id)
    assert intent.status is Status.REQUIRES_PAYMENT_METHOD
    assert intent.last_payment_error is not None
    assert intent.last_payment_error["code"] == UNUSABLE_CARD_CODE
    assert network.sent == []
    assert network.authorizations == {}
    # The key is finished with the error: a retry replays it instead of failing anew.
    assert await _recovery_point(core_engine, "gone-1") == RecoveryPoint.FINISHED.value
    replay = await _pay_again(payments, account_id, "gone-1")
    assert isinstance(replay, Replay)
    assert replay.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert UNUSABLE_CARD_CODE.encode() in replay.body
    assert network.sent == []


class CardDeletedAfterItsForward(FakeNetwork):
    """The vault forwarded the authorization, then its answer was lost and the card deleted:
    the network holds an authorization for the reference that the vault can no longer send."""

    async def authorize(self, **kwargs: object) -> AuthorizationOutcome:
        await super().authorize(**kwargs)  # type: ignore[arg-type]
        self.unopenable.add(str(kwargs["vault_token"]))
        return await super().authorize(**kwargs)  # type: ignore[arg-type]


async def test_an_authorization_that_reached_the_network_before_the_card_went_stands(
    core_engine: AsyncEngine, account_id: str
) -> None:
    network = CardDeletedAfterItsForward()
    methods = FakeMethods()
    payments = PaymentsService(core_engine, network, methods, present=payment_intent_message)
    intent = await pay(payments, account_id, "gone-2")
    assert intent.status is Status.SUCCEEDED
    assert methods.refused == [(account_id, "visa")]  # the card is gone all the same
    assert len(network.sent) == 1, "looked up by reference, never authorized again"
    assert intent.latest_charge_id is not None
    charge, _ = await payments.get_charge(account_id, intent.latest_charge_id)
    (authorization,) = network.authorizations.values()
    assert charge.authorization_id == authorization.authorization_id


class CardDeletedAfterAnotherOperationsForward(CardDeletedAfterItsForward):
    """As `CardDeletedAfterItsForward`, but the network holds another operation under the
    reference than the one the attempt sent (a bug, or a reused reference)."""

    async def authorize(self, **kwargs: object) -> AuthorizationOutcome:
        try:
            return await super().authorize(**kwargs)
        finally:
            self.hold_otherwise(str(kwargs["reference"]), amount=1)


async def test_a_card_the_vault_will_not_open_is_forgotten_whatever_its_look_up_finds(
    core_engine: AsyncEngine, account_id: str
) -> None:
    """The payment methods are told of the vault's refusal before the reference is looked up,
    and whatever the look-up then finds: the refusal is the vault's, about the card's token,
    and what the network holds under the reference does not make the vault open it again.
    Told only once the look-up had settled, a look-up refused as a mismatch (or a network out
    of reach) would leave a test id resolving to a token the vault refuses, failing every
    payment made with it until the cached resolution expires."""
    network = CardDeletedAfterAnotherOperationsForward()
    methods, _, raised = await _refused_payment(core_engine, network, account_id, "gone-4")
    # The mismatch is refused (test_lookup_expectations): nothing applied, the attempt waits.
    assert (raised.value.kind, raised.value.error_type) == (ErrorKind.INTERNAL, "api_error")
    assert await _recovery_point(core_engine, "gone-4") == RecoveryPoint.ATTEMPT_CREATED.value
    assert methods.refused == [(account_id, "visa")]


async def test_a_refusal_with_the_network_unreachable_is_retryable_and_changes_nothing(
    core_engine: AsyncEngine, account_id: str
) -> None:
    network = FakeNetwork(unopenable={"visa"}, lookup_faults=1)
    _, payments, raised = await _refused_payment(core_engine, network, account_id, "gone-3")
    assert (raised.value.kind, raised.value.should_retry) == (ErrorKind.UNAVAILABLE, True)
    assert await _recovery_point(core_engine, "gone-3") == RecoveryPoint.ATTEMPT_CREATED.value
    # The retry finds the network reachable again and ends the attempt.
    with pytest.raises(RemitError) as retried:
        await _pay_again(payments, account_id, "gone-3")
    assert retried.value.code == UNUSABLE_CARD_CODE


class ReferenceReusedThroughTheVault(FakeNetwork):
    """The acquirer refuses the reference as bound to other parameters (FAILED_PRECONDITION,
    as the vault's retired-key refusal is); it says nothing about the card."""

    async def authorize(self, **kwargs: object) -> AuthorizationOutcome:
        await super().authorize(**kwargs)  # type: ignore[arg-type]
        raise reference_reused(str(kwargs["reference"]))


async def test_an_acquirer_refusal_with_the_same_status_is_not_taken_for_an_unusable_card(
    core_engine: AsyncEngine, account_id: str
) -> None:
    network = ReferenceReusedThroughTheVault()
    _, _, raised = await _refused_payment(core_engine, network, account_id, "reused")
    # An error in remit, told as one (`test_reference_conflict`), and not as a card declined.
    assert (raised.value.kind, raised.value.error_type) == (ErrorKind.INTERNAL, "api_error")
    # Neither failed as an unusable card nor settled from the look-up: the attempt waits.
    assert await _recovery_point(core_engine, "reused") == RecoveryPoint.ATTEMPT_CREATED.value


class UnreadableCard(FakeNetwork):
    """The vault cannot decrypt the card (its sealed data fails authentication: corrupted, or
    a key the operator mounted wrongly) until `readable` is set."""

    readable = False

    async def authorize(self, **kwargs: object) -> AuthorizationOutcome:
        if not self.readable:
            raise tampered()
        return await super().authorize(**kwargs)  # type: ignore[arg-type]


async def test_a_card_that_does_not_decrypt_leaves_the_attempt_waiting_for_an_operator(
    core_engine: AsyncEngine, account_id: str
) -> None:
    network = UnreadableCard()
    methods, payments, raised = await _refused_payment(
        core_engine, network, account_id, "unreadable"
    )
    # A definite server error, not "retry now": retrying cannot help until the data or the
    # key is mended, and nothing was sent to the network.
    assert (raised.value.kind, raised.value.code, raised.value.should_retry) == (
        ErrorKind.DATA_LOSS,
        "vault_ciphertext_invalid",
        False,
    )
    assert network.sent == []
    # Not taken for a card that is gone: it may well be readable again.
    assert methods.refused == []
    assert await _recovery_point(core_engine, "unreadable") == RecoveryPoint.ATTEMPT_CREATED.value
    network.readable = True
    finished = await _pay_again(payments, account_id, "unreadable")
    assert isinstance(finished, Done)
    assert finished.value.status is Status.SUCCEEDED
    assert len(network.authorizations) == 1


class CardUnderAMissingKeyVersion(FakeNetwork):
    """The vault lacks the key version the card's data key is wrapped under (its key file lags
    a rotation) until `key_back` is set: it refuses the forward before sending anything."""

    key_back = False

    async def authorize(self, **kwargs: object) -> AuthorizationOutcome:
        if not self.key_back:
            raise RemitError(
                message="The card vtok_1 was not forwarded, and nothing was sent: its data key "
                "is wrapped under key 'card-kek' version 1, which this vault cannot use "
                "(vault_key_missing).",
                kind=ErrorKind.FAILED_PRECONDITION,
                error_type="api_error",
                code="vault_key_missing",
            )
        return await super().authorize(**kwargs)  # type: ignore[arg-type]


async def test_a_card_whose_key_version_the_vault_lacks_leaves_the_attempt_to_a_retry(
    core_engine: AsyncEngine, account_id: str
) -> None:
    network = CardUnderAMissingKeyVersion()
    methods, payments, raised = await _refused_payment(
        core_engine, network, account_id, "key-missing"
    )
    # Remit's own retryable answer (a 503, not the vault's 400 naming its key ring): nothing
    # was sent, and the key version can come back.
    error = raised.value
    assert (error.kind, error.error_type, error.code) == (
        ErrorKind.UNAVAILABLE,
        "api_error",
        "card_key_unavailable",
    )
    assert error.should_retry
    assert "card-kek" not in error.message
    assert network.sent == []
    assert network.looked_up == [], "nothing was sent, so nothing is looked up"
    # Not taken for a card that is gone.
    assert methods.refused == []
    assert await _recovery_point(core_engine, "key-missing") == RecoveryPoint.ATTEMPT_CREATED.value
    network.key_back = True
    finished = await _pay_again(payments, account_id, "key-missing")
    assert isinstance(finished, Done)
    assert finished.value.status is Status.SUCCEEDED
