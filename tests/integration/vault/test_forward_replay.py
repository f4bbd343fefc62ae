"""Over real gRPC: a forward's recorded answer is replayed only to a retry of the same operation.
A forward that reuses the reference with other parameters is refused (FAILED_PRECONDITION,
`reference_reused`) before its card is opened, audited as a refused forward, and never reaches
the acquirer. Answers recorded before the vault kept a digest still replay to their card."""

from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.errors import detail_from_rpc_error
from remit.payments.breaker import BreakerState, CircuitBreaker, NetworkBreakers
from remit.payments.network import (
    GrpcCardNetwork,
    network_holds_reference_for_other_parameters,
    vault_will_not_open_card,
)
from remit.vault.keystore import FileKeyStore
from remit_api.acquirer.v1 import acquirer_pb2_grpc
from remit_api.common.v1 import common_pb2
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import VaultHarness
from tests.support.fake_acquirer import running_acquirer
from tests.support.vault import running_vault

pytestmark = pytest.mark.anyio

VISA = "4242424242424242"
MASTERCARD = "5555555555554444"
REFERENCE = "op_reused"


async def _tokenize(harness: VaultHarness, number: str = VISA) -> str:
    request = vault_pb2.TokenizeCardRequest(
        account_id="acct_1", number=number, exp_month=12, exp_year=2030, cvc="314",
        requester="test",
    )  # fmt: skip
    return (await harness.vault.stub.TokenizeCard(request)).vault_token


def _forward(token: str, **changes: Any) -> vault_pb2.ForwardAuthorizationRequest:
    fields: dict[str, Any] = {
        "account_id": "acct_1", "vault_token": token, "destination": "acquirer",
        "amount": 2000, "currency": "usd", "reference": REFERENCE, "capture": True,
        "purpose": "payment_intent.confirm pi_test", "requester": "core", **changes,
    }  # fmt: skip
    return vault_pb2.ForwardAuthorizationRequest(**fields)


async def _forward_audit(harness: VaultHarness) -> list[tuple[Any, ...]]:
    async with harness.engine.connect() as db:
        rows = await db.execute(
            text(
                "SELECT token, reference, destination, succeeded, key_version FROM audit_events "
                "WHERE action = 'forward' ORDER BY succeeded DESC, token"
            )
        )
        return [tuple(row) for row in rows]


async def test_a_retry_of_the_same_operation_replays_whoever_asks_and_why(
    harness: VaultHarness,
) -> None:
    """Who asks and why are the audit log's, and the billing address only feeds the address
    checks: none of them makes a retry another operation."""
    token = await _tokenize(harness)
    first = await harness.vault.stub.ForwardAuthorization(_forward(token))
    again = await harness.vault.stub.ForwardAuthorization(
        _forward(
            token,
            requester="worker",
            purpose="completer: payment_intent.confirm pi_test",
            billing_address=common_pb2.Address(line1="1 Elsewhere Road", postal_code="99999"),
        )
    )
    assert (first.replayed, again.replayed) == (False, True)
    assert again.result == first.result
    assert len(harness.acquirer.requests) == 1


# Each a forward of the reference that is not the first one's operation.
OTHER_OPERATIONS: dict[str, dict[str, Any]] = {
    "amount": {"amount": 2001},
    "currency": {"currency": "eur"},
    "capture": {"capture": False},
    "three_d_secure": {"three_d_secure_authenticated": True},
    "off_session": {"off_session": True, "initial_network_transaction_id": "ntid_setup"},
    "setup_off_session": {"setup_off_session": True},
}


@pytest.mark.parametrize("changed", [*OTHER_OPERATIONS, "card"])
async def test_a_reference_reused_with_other_parameters_is_refused_audited_and_never_sent(
    harness: VaultHarness, changed: str
) -> None:
    token = await _tokenize(harness)
    other_card = await _tokenize(harness, number=MASTERCARD)
    first = await harness.vault.stub.ForwardAuthorization(_forward(token))
    reused = (
        _forward(other_card) if changed == "card" else _forward(token, **OTHER_OPERATIONS[changed])
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.vault.stub.ForwardAuthorization(reused)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    detail = detail_from_rpc_error(caught.value)
    assert detail is not None
    assert (detail.type, detail.code, detail.param, detail.http_status) == (
        "idempotency_error",
        "reference_reused",
        "reference",
        400,
    )
    # It names the reference, and nothing of either card.
    assert f"'{REFERENCE}'" in detail.message
    for card_data in (VISA, MASTERCARD, VISA[-4:], MASTERCARD[-4:], "314", token, other_card):
        assert card_data not in detail.message
        assert card_data not in (caught.value.details() or "")
    # The acquirer saw the first forward only, and the reused one never opened its card: a
    # CVC still held stays held.
    assert len(harness.acquirer.requests) == 1
    assert harness.acquirer.requests[0].amount == 2000
    details = await harness.vault.stub.GetCardDetails(
        vault_pb2.GetCardDetailsRequest(account_id="acct_1", vault_token=other_card, requester="t")
    )
    assert details.cvc_present
    # Audited as a refused forward (PCI DSS 10.2.1.4), as the caller named it: no key version.
    assert await _forward_audit(harness) == [
        (token, REFERENCE, "acquirer", True, 1),
        (reused.vault_token, REFERENCE, "acquirer", False, 0),
    ]
    # The first operation's retry is still answered.
    again = await harness.vault.stub.ForwardAuthorization(_forward(token))
    assert (again.replayed, again.result) == (True, first.result)


async def test_a_reference_reused_towards_another_destination_is_refused(
    vault_engine: AsyncEngine, tmp_path: Path
) -> None:
    keys = FileKeyStore(tmp_path / "keys.json")
    keys.ensure_exists()
    async with (
        running_acquirer() as (acquirer, target),
        running_vault(vault_engine, keys, {"acquirer": target, "backup": target}) as vault,
    ):
        request = vault_pb2.TokenizeCardRequest(
            account_id="acct_1", number=VISA, exp_month=12, exp_year=2030, requester="test"
        )
        token = (await vault.stub.TokenizeCard(request)).vault_token
        await vault.stub.ForwardAuthorization(_forward(token))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await vault.stub.ForwardAuthorization(_forward(token, destination="backup"))
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert len(acquirer.requests) == 1


async def _forget_digests(harness: VaultHarness) -> None:
    """Make the recorded answers look as they were recorded before vault migration 0003."""
    async with harness.engine.begin() as db:
        await db.execute(text("UPDATE forwards SET request_digest = NULL"))


async def test_an_answer_recorded_without_a_digest_replays_to_a_forward_of_its_card(
    harness: VaultHarness,
) -> None:
    """A core resuming a payment across the upgrade still gets its answer. What the row cannot
    tell (the amount, the currency, the flags) is not compared; its card and destination are."""
    token = await _tokenize(harness)
    other_card = await _tokenize(harness, number=MASTERCARD)
    first = await harness.vault.stub.ForwardAuthorization(_forward(token))
    await _forget_digests(harness)
    for resumed in (_forward(token), _forward(token, amount=2001, capture=False)):
        again = await harness.vault.stub.ForwardAuthorization(resumed)
        assert (again.replayed, again.result) == (True, first.result)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.vault.stub.ForwardAuthorization(_forward(other_card))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert len(harness.acquirer.requests) == 1


async def test_each_recorded_answer_keeps_a_digest_of_its_parameters(
    harness: VaultHarness,
) -> None:
    token = await _tokenize(harness)
    await harness.vault.stub.ForwardAuthorization(_forward(token))
    await harness.vault.stub.ForwardAuthorization(_forward(token, reference="op_other", amount=1))
    async with harness.engine.connect() as db:
        digests = (
            (await db.execute(text("SELECT request_digest FROM forwards ORDER BY reference")))
            .scalars()
            .all()
        )
    assert [len(digest) for digest in digests] == [32, 32]
    assert digests[0] != digests[1]


async def test_the_cores_network_client_takes_the_refusal_as_definite(
    harness: VaultHarness,
) -> None:
    """The core's client of the vault: the refusal is a definite answer (nothing to look up at
    the acquirer), not a card the vault will not open, and says nothing of the network's
    health, so the breaker stays closed."""
    token = await _tokenize(harness)
    breaker = CircuitBreaker(failure_threshold=1)
    async with grpc.aio.insecure_channel("127.0.0.1:9") as nowhere:
        network = GrpcCardNetwork(
            harness.vault.stub,
            acquirer_pb2_grpc.AcquirerServiceStub(nowhere),
            NetworkBreakers(forwards=breaker),
        )

        async def authorize(amount_minor: int) -> object:
            return await network.authorize(
                account_id="acct_1", vault_token=token, amount_minor=amount_minor,
                currency="usd", reference="ch_reused", capture=True,
                purpose="payment_intent.confirm pi_test",
            )  # fmt: skip

        await authorize(2000)
        with pytest.raises(RemitError) as refused:
            await authorize(2500)
    error = refused.value
    assert (error.kind, error.error_type, error.code) == (
        ErrorKind.FAILED_PRECONDITION,
        "idempotency_error",
        "reference_reused",
    )
    assert network_holds_reference_for_other_parameters(error)
    assert not vault_will_not_open_card(error)
    assert breaker.state is BreakerState.CLOSED
    assert len(harness.acquirer.requests) == 1
