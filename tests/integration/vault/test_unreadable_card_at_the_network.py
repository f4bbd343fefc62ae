"""A card whose sealed data no longer decrypts, seen from the payments side of the vault.

The vault answers DATA_LOSS: it knows it forwarded nothing. The core's network client must take
that as a definite refusal, not as an outcome to look up at the acquirer, and must not count it
against the circuit breaker, which watches the network's health: one unreadable card must not
make every other payment fail fast."""

import grpc
import pytest

from remit.core.errors import ErrorKind, RemitError
from remit.core.ids import new_id
from remit.payments.breaker import BreakerState, CircuitBreaker, NetworkBreakers
from remit.payments.network import AuthorizationOutcome, GrpcCardNetwork
from remit_api.acquirer.v1 import acquirer_pb2_grpc
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import VaultHarness
from tests.support.vault import damage_sealed_card

pytestmark = pytest.mark.anyio


async def _token(harness: VaultHarness, number: str) -> str:
    request = vault_pb2.TokenizeCardRequest(
        account_id="acct_1", number=number, exp_month=12, exp_year=2030, requester="test"
    )
    return (await harness.vault.stub.TokenizeCard(request)).vault_token


async def _authorize(network: GrpcCardNetwork, token: str) -> AuthorizationOutcome:
    return await network.authorize(
        account_id="acct_1",
        vault_token=token,
        amount_minor=2000,
        currency="usd",
        reference=new_id("ch"),
        capture=True,
        purpose="payment_intent.confirm pi_test",
    )


async def test_an_unreadable_card_is_a_definite_refusal_that_leaves_the_breaker_closed(
    harness: VaultHarness,
) -> None:
    unreadable = await _token(harness, "4242424242424242")
    healthy = await _token(harness, "5555555555554444")
    async with harness.engine.begin() as db:
        await damage_sealed_card(db, unreadable)
    breaker = CircuitBreaker(failure_threshold=2)
    # The acquirer's address is the vault's business; this stub is only for look-ups, which
    # must not happen here.
    async with grpc.aio.insecure_channel("127.0.0.1:9") as nowhere:
        network = GrpcCardNetwork(
            harness.vault.stub,
            acquirer_pb2_grpc.AcquirerServiceStub(nowhere),
            NetworkBreakers(forwards=breaker),
        )
        for _ in range(3):
            # A RemitError, so not OutcomeUnknownError: nothing to look up.
            with pytest.raises(RemitError) as refused:
                await _authorize(network, unreadable)
            assert (refused.value.kind, refused.value.code) == (
                ErrorKind.DATA_LOSS,
                "vault_ciphertext_invalid",
            )
            assert refused.value.should_retry is False
        assert breaker.state is BreakerState.CLOSED
        assert harness.acquirer.requests == []
        # Other cards still pay.
        outcome = await _authorize(network, healthy)
    assert outcome.approved
    assert len(harness.acquirer.requests) == 1
