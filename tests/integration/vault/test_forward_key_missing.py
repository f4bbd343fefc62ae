"""A forward of a card whose data key is wrapped under a key version missing from the vault's key
ring (a vault process whose key file lags a rotation, a version removed too early) is refused
when the card is opened, before its CVC is taken: nothing was sent, nor spent. The vault says
so with a definite status (FAILED_PRECONDITION, under `vault_key_missing`), not INTERNAL, which
the core takes for an unknown outcome at the network: looked up, and counted against the
network's health by its circuit breaker."""

import grpc
import pytest

from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.errors import detail_from_rpc_error
from remit.payments.breaker import BreakerState, CircuitBreaker, NetworkBreakers
from remit.payments.network import GrpcCardNetwork, vault_lacks_card_key
from remit.vault.crypto import KeyRing
from remit_api.acquirer.v1 import acquirer_pb2_grpc
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import VaultHarness

pytestmark = pytest.mark.anyio


async def _card_under_a_missing_key_version(harness: VaultHarness) -> tuple[str, KeyRing]:
    """A card with a CVC, sealed under key version 1, which the key file then loses; and the
    key ring as it was, to put it back."""
    token = (
        await harness.vault.stub.TokenizeCard(
            vault_pb2.TokenizeCardRequest(
                account_id="acct_1", number="4242424242424242", exp_month=12, exp_year=2030,
                cvc="123", requester="test",
            )
        )
    ).vault_token  # fmt: skip
    await harness.vault.stub.RotateKey(vault_pb2.RotateKeyRequest(requester="operator"))
    with harness.keys.locked():
        whole = harness.keys.load()
        harness.keys.save(whole.without_version(1))
    return token, whole


def _forward(token: str, reference: str) -> vault_pb2.ForwardAuthorizationRequest:
    return vault_pb2.ForwardAuthorizationRequest(
        account_id="acct_1", vault_token=token, destination="acquirer", amount=2000,
        currency="usd", reference=reference, purpose="payment_intent.confirm pi_test",
        requester="core",
    )  # fmt: skip


async def test_a_forward_without_the_cards_key_version_is_refused_as_not_sent(
    harness: VaultHarness,
) -> None:
    token, whole = await _card_under_a_missing_key_version(harness)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.vault.stub.ForwardAuthorization(_forward(token, "ch_1"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    detail = detail_from_rpc_error(caught.value)
    assert detail is not None
    assert detail.code == "vault_key_missing"
    assert "nothing was sent" in detail.message
    assert "4242" not in detail.message
    assert harness.acquirer.requests == []

    # The key version is back: the retry goes, with the CVC, which the refusal did not spend.
    with harness.keys.locked():
        harness.keys.save(whole)
    reply = await harness.vault.stub.ForwardAuthorization(_forward(token, "ch_1"))
    assert reply.result.approved
    [sent] = harness.acquirer.requests
    assert sent.HasField("cvc")


async def test_the_core_takes_it_as_definite_and_leaves_the_breaker_closed(
    harness: VaultHarness,
) -> None:
    token, _ = await _card_under_a_missing_key_version(harness)
    breaker = CircuitBreaker(failure_threshold=1)
    # The acquirer's address is the vault's business; this stub is only for look-ups.
    async with grpc.aio.insecure_channel("127.0.0.1:9") as nowhere:
        network = GrpcCardNetwork(
            harness.vault.stub,
            acquirer_pb2_grpc.AcquirerServiceStub(nowhere),
            NetworkBreakers(forwards=breaker),
        )
        # A RemitError, so not OutcomeUnknownError: nothing to look up.
        with pytest.raises(RemitError) as refused:
            await network.authorize(
                account_id="acct_1", vault_token=token, amount_minor=2000, currency="usd",
                reference="ch_1", capture=True, purpose="payment_intent.confirm pi_test",
            )  # fmt: skip
    assert refused.value.kind is ErrorKind.FAILED_PRECONDITION
    assert vault_lacks_card_key(refused.value)
    assert breaker.state is BreakerState.CLOSED
    assert harness.acquirer.requests == []
