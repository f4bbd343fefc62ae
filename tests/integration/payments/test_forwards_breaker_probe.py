"""What the breaker of the forwards (`NetworkBreakers.forwards`) is told of the vault's answers.

Refusals the vault makes on its own, before anything reaches the acquirer, tell nothing of the
network's health: they neither reset the breaker's count of failures nor close it half-open.
And a half-open breaker's probe is released however its call ends without an outcome the
breaker is told of, even when classifying the failure raises: left claimed, the breaker would
refuse every forward until the process restarts."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import status_pb2
from grpc_status import rpc_status

from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.errors import GRPC_CODES, error_detail
from remit.grpcutil.forward_in_flight import forward_in_flight
from remit.payments import network as network_module
from remit.payments.breaker import BreakerState, CircuitBreaker, NetworkBreakers
from remit.payments.network import GrpcCardNetwork, OutcomeUnknownError
from remit_api.acquirer.v1 import acquirer_pb2_grpc
from remit_api.vault.v1 import vault_pb2, vault_pb2_grpc
from tests.integration.payments.test_breaker_paths import Context, ReadableAcquirer, _serving

pytestmark = pytest.mark.anyio

OPEN_S = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _refusal(code: str, kind: ErrorKind, param: str | None = None) -> RemitError:
    return RemitError(message="refused", kind=kind, error_type="api_error", code=code, param=param)


# The vault's own refusals, each as the vault raises it (`remit.vault.service`).
VAULT_OWN_REFUSALS = {
    "key missing": _refusal("vault_key_missing", ErrorKind.FAILED_PRECONDITION),
    "key retired": _refusal("vault_key_retired", ErrorKind.FAILED_PRECONDITION),
    "card deleted": _refusal("resource_missing", ErrorKind.NOT_FOUND, "vault_token"),
    "seals failed": _refusal("vault_ciphertext_invalid", ErrorKind.DATA_LOSS),
    "not allowlisted": _refusal(
        "destination_not_allowed", ErrorKind.PERMISSION_DENIED, "destination"
    ),
}


def _with_unreadable_intent(error: RemitError) -> grpc.Status:
    """`error` as a server sends it, but for its detail's payment_intent, whose bytes do not
    decode."""
    detail = error_detail(error)
    detail.payment_intent.type_url = "type.googleapis.com/remit_api.payments.v1.PaymentIntent"
    detail.payment_intent.value = b"\xff\xff\xff"
    packed = any_pb2.Any()
    packed.Pack(detail)
    code = GRPC_CODES[error.kind].value[0]
    return rpc_status.to_status(
        status_pb2.Status(code=code, message=error.message, details=[packed])
    )


class Vault(vault_pb2_grpc.VaultServiceServicer):
    """Forwards of a reference named in `refusals` are refused with it; a reference starting
    with `lost-` fails at the link to the acquirer; `in-flight-` is answered as in flight;
    `garbled-` fails with status details that do not decode; `unreadable-intent-` is refused
    as reused, the detail's payment_intent bytes that do not decode."""

    def __init__(self, refusals: dict[str, RemitError] | None = None) -> None:
        self.refusals = refusals or {}

    async def ForwardAuthorization(  # noqa: N802 (the RPC name)
        self, request: vault_pb2.ForwardAuthorizationRequest, context: Context
    ) -> vault_pb2.ForwardAuthorizationResponse:
        if request.reference in self.refusals:
            raise self.refusals[request.reference]
        if request.reference.startswith("in-flight-"):
            raise forward_in_flight(request.reference)
        if request.reference.startswith("unreadable-intent-"):
            reused = _refusal("reference_reused", ErrorKind.FAILED_PRECONDITION, "reference")
            await context.abort_with_status(_with_unreadable_intent(reused))
        if request.reference.startswith("garbled-"):
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                "garbled",
                trailing_metadata=(("grpc-status-details-bin", b"\x0a\xff\xff\xff"),),
            )
        await context.abort(grpc.StatusCode.UNAVAILABLE, "the acquirer is out of reach")
        raise AssertionError("unreachable")


async def _authorize(network: GrpcCardNetwork, reference: str) -> None:
    await network.authorize(
        account_id="acct_1",
        vault_token="vtok_1",
        amount_minor=100,
        currency="usd",
        reference=reference,
        capture=True,
        purpose="payment",
    )


def _network(vault_channel: Any, acquirer_channel: Any, breaker: CircuitBreaker) -> GrpcCardNetwork:
    return GrpcCardNetwork(
        vault_pb2_grpc.VaultServiceStub(vault_channel),
        acquirer_pb2_grpc.AcquirerServiceStub(acquirer_channel),
        NetworkBreakers(forwards=breaker),
    )


@asynccontextmanager
async def _network_through(vault: Vault, breaker: CircuitBreaker) -> AsyncIterator[GrpcCardNetwork]:
    """A card network whose forwards go to `vault`, served with a readable acquirer."""
    async with (
        _serving(vault_pb2_grpc.add_VaultServiceServicer_to_server, vault) as vault_channel,
        _serving(
            acquirer_pb2_grpc.add_AcquirerServiceServicer_to_server, ReadableAcquirer()
        ) as acquirer_channel,
    ):
        yield _network(vault_channel, acquirer_channel, breaker)


def _half_open(clock: Clock) -> CircuitBreaker:
    breaker = CircuitBreaker(failure_threshold=1, open_s=OPEN_S, now=clock)
    breaker.record_failure()
    clock.now += OPEN_S
    assert breaker.state is BreakerState.HALF_OPEN
    return breaker


@pytest.mark.parametrize("name", sorted(VAULT_OWN_REFUSALS))
async def test_a_refusal_of_the_vault_s_own_does_not_reset_the_failures(name: str) -> None:
    vault = Vault({"refused": VAULT_OWN_REFUSALS[name]})
    breaker = CircuitBreaker(failure_threshold=2, open_s=OPEN_S)
    async with _network_through(vault, breaker) as network:
        with pytest.raises(OutcomeUnknownError):
            await _authorize(network, "lost-1")
        with pytest.raises(RemitError) as refused:
            await _authorize(network, "refused")
        assert refused.value.code == VAULT_OWN_REFUSALS[name].code
        with pytest.raises(OutcomeUnknownError):
            await _authorize(network, "lost-2")
    # Two failures of the link in a row, whatever the vault refused in between.
    assert breaker.state is BreakerState.OPEN


@pytest.mark.parametrize("name", sorted(VAULT_OWN_REFUSALS))
async def test_a_refusal_of_the_vault_s_own_releases_a_probe_without_closing(name: str) -> None:
    clock = Clock()
    breaker = _half_open(clock)
    vault = Vault({"refused": VAULT_OWN_REFUSALS[name]})
    async with _network_through(vault, breaker) as network:
        with pytest.raises(RemitError):
            await _authorize(network, "refused")
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow(), "the next forward probes"


async def test_an_acquirer_s_refusal_through_the_vault_is_an_answer() -> None:
    clock = Clock()
    breaker = _half_open(clock)
    reused = _refusal("reference_reused", ErrorKind.FAILED_PRECONDITION, "reference")
    async with _network_through(Vault({"reused": reused}), breaker) as network:
        with pytest.raises(RemitError):
            await _authorize(network, "reused")
    assert breaker.state is BreakerState.CLOSED


async def test_a_refusal_whose_intent_cannot_be_read_is_still_an_answer() -> None:
    """The refusal is rebuilt without what could not be read, rather than failing the call with
    the parser's exception, which would leave the breaker untold of the network's answer."""
    clock = Clock()
    breaker = _half_open(clock)
    async with _network_through(Vault(), breaker) as network:
        with pytest.raises(RemitError) as refused:
            await _authorize(network, "unreadable-intent-1")
    assert (refused.value.code, refused.value.related) == ("reference_reused", None)
    assert breaker.state is BreakerState.CLOSED


async def test_an_in_flight_refusal_releases_a_probe() -> None:
    clock = Clock()
    breaker = _half_open(clock)
    async with _network_through(Vault(), breaker) as network:
        with pytest.raises(OutcomeUnknownError):
            await _authorize(network, "in-flight-1")
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow(), "the next forward probes"


async def test_status_details_that_do_not_decode_are_no_detail() -> None:
    clock = Clock()
    breaker = _half_open(clock)
    async with _network_through(Vault(), breaker) as network:
        # An UNAVAILABLE as any other: unknown, and the probe failed.
        with pytest.raises(OutcomeUnknownError):
            await _authorize(network, "garbled-1")
    assert breaker.state is BreakerState.OPEN
    clock.now += OPEN_S
    assert breaker.allow(), "probing again once open_s has passed"


async def test_a_probe_is_released_when_classifying_its_failure_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(error: grpc.aio.AioRpcError) -> bool:
        raise RuntimeError("classification failed")

    monkeypatch.setattr(network_module, "refused_as_in_flight", broken)
    clock = Clock()
    breaker = _half_open(clock)
    async with _network_through(Vault(), breaker) as network:
        with pytest.raises(RuntimeError):
            await _authorize(network, "lost-1")
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow(), "the next forward probes"
