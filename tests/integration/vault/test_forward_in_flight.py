"""The vault does not refuse a card it will not open any more (deleted, or sealed under a key
now retired) while a forward of the same reference it sent may still commit at the acquirer: it
answers that the outcome is unknown (`remit.grpcutil.forward_in_flight`), which the core looks
up again later. Once no such forward can still commit, and for a reference it never sent, it
refuses as before."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.forward_in_flight import IN_FLIGHT_CODE, refused_as_in_flight
from remit.payments.breaker import BreakerState, CircuitBreaker, NetworkBreakers
from remit.payments.network import GrpcCardNetwork, OutcomeUnknownError
from remit.vault.forwards_in_flight import forward_may_still_commit_for
from remit.vault.keystore import FileKeyStore
from remit_api.acquirer.v1 import acquirer_pb2, acquirer_pb2_grpc
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import START, VaultHarness
from tests.support.fake_acquirer import RecordingAcquirer, running_acquirer
from tests.support.vault import running_vault

pytestmark = pytest.mark.anyio


class LostAnswers(RecordingAcquirer):
    """Every authorization reaches the acquirer, and its answer is lost on the way back."""

    async def Authorize(  # noqa: N802 (the RPC name)
        self, request: acquirer_pb2.AuthorizeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> acquirer_pb2.AuthorizeResponse:
        self.requests.append(request)
        await context.abort(grpc.StatusCode.UNAVAILABLE, "the answer was lost")
        raise AssertionError("abort raises")


@pytest.fixture
async def lossy(vault_engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[VaultHarness]:
    keys = FileKeyStore(tmp_path / "keys.json")
    keys.ensure_exists()
    clock = FixedClock(START)
    async with (
        running_acquirer(LostAnswers()) as (acquirer, target),
        running_vault(vault_engine, keys, {"acquirer": target}, clock=clock) as vault,
    ):
        yield VaultHarness(vault, acquirer, keys, clock, vault_engine)


async def _tokenize(harness: VaultHarness) -> str:
    request = vault_pb2.TokenizeCardRequest(
        account_id="acct_1", number="4242424242424242", exp_month=12, exp_year=2030,
        cvc="314", requester="test",
    )  # fmt: skip
    return (await harness.vault.stub.TokenizeCard(request)).vault_token


async def _forward(harness: VaultHarness, token: str, reference: str) -> grpc.aio.AioRpcError:
    request = vault_pb2.ForwardAuthorizationRequest(
        account_id="acct_1", vault_token=token, destination="acquirer", amount=2000,
        currency="usd", reference=reference, capture=True,
        purpose="payment_intent.confirm pi_test", requester="core",
    )  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await harness.vault.stub.ForwardAuthorization(request)
    return failed.value


def _code(error: grpc.aio.AioRpcError) -> str | None:
    detail = detail_from_rpc_error(error)
    return None if detail is None else detail.code


async def _delete(harness: VaultHarness, token: str) -> None:
    await harness.vault.stub.DeleteCard(
        vault_pb2.DeleteCardRequest(account_id="acct_1", vault_token=token, requester="test")
    )


async def test_a_deleted_card_is_not_refused_while_its_lost_forward_may_still_commit(
    lossy: VaultHarness,
) -> None:
    token = await _tokenize(lossy)
    lost = await _forward(lossy, token, "ch_lost")
    assert lost.code() is grpc.StatusCode.UNAVAILABLE
    assert not refused_as_in_flight(lost)  # a forward cut off: the core looks it up
    await _delete(lossy, token)

    in_flight = await _forward(lossy, token, "ch_lost")
    assert (in_flight.code(), _code(in_flight)) == (grpc.StatusCode.UNAVAILABLE, IN_FLIGHT_CODE)
    assert refused_as_in_flight(in_flight)
    # Another reference, which the vault never sent with this card, is refused at once.
    never_sent = await _forward(lossy, token, "ch_other")
    assert (never_sent.code(), _code(never_sent)) == (
        grpc.StatusCode.NOT_FOUND,
        "resource_missing",
    )

    lossy.clock.advance(forward_may_still_commit_for().total_seconds() - 1)
    assert _code(await _forward(lossy, token, "ch_lost")) == IN_FLIGHT_CODE
    lossy.clock.advance(1)
    refused = await _forward(lossy, token, "ch_lost")
    assert (refused.code(), _code(refused)) == (grpc.StatusCode.NOT_FOUND, "resource_missing")
    assert len(lossy.acquirer.requests) == 1


async def test_a_card_under_a_retired_key_is_not_refused_while_its_lost_forward_may_commit(
    lossy: VaultHarness,
) -> None:
    token = await _tokenize(lossy)
    await _forward(lossy, token, "ch_lost")
    await lossy.vault.stub.RotateKey(vault_pb2.RotateKeyRequest(requester="operator"))
    with lossy.keys.locked():
        lossy.keys.save(lossy.keys.load().with_minimum(2))

    assert _code(await _forward(lossy, token, "ch_lost")) == IN_FLIGHT_CODE
    assert _code(await _forward(lossy, token, "ch_other")) == "vault_key_retired"
    lossy.clock.advance(forward_may_still_commit_for().total_seconds())
    assert _code(await _forward(lossy, token, "ch_lost")) == "vault_key_retired"
    assert len(lossy.acquirer.requests) == 1


def test_the_window_follows_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The vault's call to the acquirer, which may end a second past the network's timeout
    (the core's margin for the vault less the vault's for its answer), then the acquirer's two
    statements of an off-session authorization citing its setup, each after a wait for a
    connection, and the error of two readings of the database's clock: from the settings, not
    a fixed number."""
    monkeypatch.setenv("REMIT_NETWORK_TIMEOUT_S", "4")
    monkeypatch.setenv("REMIT_DATABASE_POOL_TIMEOUT_S", "2")
    monkeypatch.setenv("REMIT_STATEMENT_TIMEOUT_S", "10")
    assert forward_may_still_commit_for().total_seconds() == 4 + 1 + 2 * (2 + 10) + 2


async def test_the_core_looks_it_up_later_without_blaming_the_networks_health(
    lossy: VaultHarness,
) -> None:
    """The core's network client takes the answer as an outcome unknown, to be looked up, and
    does not count it against its breaker: the network is not at fault."""
    token = await _tokenize(lossy)
    await _forward(lossy, token, "ch_lost")
    await _delete(lossy, token)
    breaker = CircuitBreaker(failure_threshold=1)
    async with grpc.aio.insecure_channel("127.0.0.1:9") as nowhere:
        network = GrpcCardNetwork(
            lossy.vault.stub,
            acquirer_pb2_grpc.AcquirerServiceStub(nowhere),
            NetworkBreakers(forwards=breaker),
        )
        with pytest.raises(OutcomeUnknownError):
            await network.authorize(
                account_id="acct_1", vault_token=token, amount_minor=2000, currency="usd",
                reference="ch_lost", capture=True, purpose="payment_intent.confirm pi_test",
            )  # fmt: skip
    assert breaker.state is BreakerState.CLOSED
