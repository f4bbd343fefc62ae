"""A forward the acquirer refused before carrying it out (its bound full: RESOURCE_EXHAUSTED
marked `remit-refused-unstarted`) did not send the CVC the vault took for it: the vault puts
it back, so that the retry the caller is invited to make goes out with it, once. It is not put
back when the vault cannot be sure nothing was sent, nor once it expired or its card was
deleted."""

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.core.secrets import Secret
from remit.grpcutil.concurrency import ConcurrencyLimit
from remit.grpcutil.unstarted import (
    UnstartedRefusalError,
    refused_unstarted,
    unstarted_overload_refusal,
)
from remit.vault.domain import AuditAction, AuditFilter, ForwardRequest, OutboundAuthorization
from remit.vault.forwarding import Destination
from remit.vault.keystore import FileKeyStore
from remit.vault.service import NewCardDetails, VaultService
from remit_api.acquirer.v1 import acquirer_pb2, acquirer_pb2_grpc
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import START
from tests.support.fake_acquirer import RecordingAcquirer
from tests.support.vault import running_vault

pytestmark = pytest.mark.anyio

VISA = "4242424242424242"
CVC = "314"
# Only a guard against a hang: the held call is released as soon as the refusal is in.
HOLD_GUARD_S = 30.0
_HOLD = "op_hold"

Context = grpc.aio.ServicerContext[Any, Any]


class HoldingAcquirer(RecordingAcquirer):
    """Holds the authorization of reference `_HOLD` until released: with a bound of one call,
    it fills the acquirer's bound."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def Authorize(  # noqa: N802 (the RPC name)
        self, request: acquirer_pb2.AuthorizeRequest, context: Context
    ) -> acquirer_pb2.AuthorizeResponse:
        if request.reference == _HOLD:
            self.holding.set()
            await asyncio.wait_for(self.release.wait(), HOLD_GUARD_S)
        return await super().Authorize(request, context)


@asynccontextmanager
async def _acquirer_bounded_to_one_call(servicer: HoldingAcquirer) -> AsyncIterator[str]:
    """The acquirer behind remit's own admission bound, as `remit serve` runs it."""
    server = grpc.aio.server(interceptors=[ConcurrencyLimit(1)])
    acquirer_pb2_grpc.add_AcquirerServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


def _forward(token: str, reference: str) -> vault_pb2.ForwardAuthorizationRequest:
    return vault_pb2.ForwardAuthorizationRequest(
        account_id="acct_1", vault_token=token, destination="acquirer", amount=2000,
        currency="usd", reference=reference, capture=True, purpose="payment_intent.confirm",
        requester="core",
    )  # fmt: skip


async def _stored_cvc(engine: AsyncEngine, token: str) -> tuple[object, object]:
    async with engine.connect() as db:
        row = (
            await db.execute(
                text("SELECT cvc_ciphertext, cvc_expires_at FROM cards WHERE token = :t"),
                {"t": token},
            )
        ).one()
    return row[0], row[1]


async def test_a_forward_the_acquirer_refused_unstarted_gets_its_cvc_back_for_the_retry(
    vault_engine: AsyncEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys = FileKeyStore(tmp_path / "keys.json")
    keys.ensure_exists()
    acquirer = HoldingAcquirer()
    with caplog.at_level(logging.DEBUG):
        async with (
            _acquirer_bounded_to_one_call(acquirer) as target,
            running_vault(
                vault_engine, keys, {"acquirer": target}, clock=FixedClock(START)
            ) as vault,
            grpc.aio.insecure_channel(target) as channel,
        ):
            token = (
                await vault.stub.TokenizeCard(
                    vault_pb2.TokenizeCardRequest(
                        account_id="acct_1",
                        number=VISA,
                        exp_month=12,
                        exp_year=2030,
                        cvc=CVC,
                        requester="test",
                    )
                )
            ).vault_token
            stored_before = await _stored_cvc(vault_engine, token)

            # Another authorization holds the acquirer's only place.
            held = asyncio.ensure_future(
                acquirer_pb2_grpc.AcquirerServiceStub(channel).Authorize(
                    acquirer_pb2.AuthorizeRequest(
                        reference=_HOLD,
                        card_number="5555555555554444",
                        exp_month=12,
                        exp_year=2030,
                        amount=100,
                        currency="usd",
                        merchant_id="acct_0",
                    )
                )
            )
            await asyncio.wait_for(acquirer.holding.wait(), HOLD_GUARD_S)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await vault.stub.ForwardAuthorization(_forward(token, "op_pay"))
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert refused_unstarted(refused.value)
            # Back in its slot, sealed anew, with the expiry it had.
            cvc_sealed, cvc_expires_at = await _stored_cvc(vault_engine, token)
            assert cvc_sealed is not None
            assert cvc_sealed != stored_before[0]
            assert cvc_expires_at == stored_before[1]
            details = await vault.stub.GetCardDetails(
                vault_pb2.GetCardDetailsRequest(
                    account_id="acct_1", vault_token=token, requester="t"
                )
            )
            assert details.cvc_present

            acquirer.release.set()
            await held
            retried = await vault.stub.ForwardAuthorization(_forward(token, "op_pay"))
            assert retried.result.approved
            assert not retried.replayed
            # Single use all the same: the next authorization goes without it.
            await vault.stub.ForwardAuthorization(_forward(token, "op_next"))

    sent = [(r.reference, r.cvc if r.HasField("cvc") else None) for r in acquirer.requests]
    assert sent == [(_HOLD, None), ("op_pay", CVC), ("op_next", None)]
    assert await _stored_cvc(vault_engine, token) == (None, None)
    assert VISA not in caplog.text
    assert re.search(rf"(?<![0-9A-Za-z]){CVC}(?![0-9A-Za-z])", caplog.text) is None
    assert "held again" in caplog.text


@dataclass
class FailingDestination:
    """Fails every authorization with `error`, after doing `meanwhile`."""

    error: RemitError
    meanwhile: Any = None
    calls: int = 0

    async def authorize(self, outbound: OutboundAuthorization) -> vault_pb2.ForwardedAuthorization:
        self.calls += 1
        if self.meanwhile is not None:
            await self.meanwhile()
        raise self.error

    async def close(self) -> None:
        return None


def _service(
    engine: AsyncEngine, tmp_path: Path, destination: Destination, clock: FixedClock
) -> VaultService:
    keys = FileKeyStore(tmp_path / "keys.json")
    keys.ensure_exists()
    return VaultService(engine, keys, {"acquirer": destination}, clock=clock)


_REQUEST = ForwardRequest(
    destination="acquirer", amount_minor=2000, currency="usd", reference="op_1",
    capture=True, purpose="payment_intent.confirm", requester="core",
)  # fmt: skip


async def _token(service: VaultService) -> str:
    tokenized = await service.tokenize(
        "acct_1", Secret(VISA), 12, 2030, Secret(CVC), requester="test"
    )
    return tokenized.token


async def test_no_cvc_is_put_back_unless_the_refusal_says_nothing_was_sent(
    vault_engine: AsyncEngine, tmp_path: Path
) -> None:
    unanswered = RemitError(message="no answer", kind=ErrorKind.UNAVAILABLE, should_retry=True)
    destination = FailingDestination(unanswered)
    service = _service(vault_engine, tmp_path, destination, FixedClock(START))
    token = await _token(service)
    with pytest.raises(RemitError):
        await service.forward("acct_1", token, _REQUEST)
    assert destination.calls == 1
    assert await _stored_cvc(vault_engine, token) == (None, None)


async def test_a_cvc_that_expired_or_a_card_deleted_meanwhile_gets_no_cvc_back(
    vault_engine: AsyncEngine, tmp_path: Path
) -> None:
    clock = FixedClock(START)
    destination = FailingDestination(unstarted_overload_refusal("card network"))
    service = _service(vault_engine, tmp_path, destination, clock)
    expiring = await _token(service)
    deleted = await _token(service)

    async def expire() -> None:
        clock.advance(60 * 60)

    destination.meanwhile = expire
    with pytest.raises(UnstartedRefusalError):
        await service.forward("acct_1", expiring, _REQUEST)
    assert await _stored_cvc(vault_engine, expiring) == (None, None)

    clock.advance(-60 * 60)

    async def delete() -> None:
        await service.delete_card("acct_1", deleted, requester="t")

    destination.meanwhile = delete
    with pytest.raises(UnstartedRefusalError):
        await service.forward("acct_1", deleted, _REQUEST)
    assert await _stored_cvc(vault_engine, deleted) == (None, None)
    assert destination.calls == 2


async def test_a_cvc_is_not_put_back_into_a_card_whose_details_changed_meanwhile(
    vault_engine: AsyncEngine, tmp_path: Path
) -> None:
    """The CVC's seal binds the card's expiry and billing details: put back after an update
    re-sealed the card under new ones, it would fail authentication at the next forward."""
    destination = FailingDestination(unstarted_overload_refusal("card network"))
    service = _service(vault_engine, tmp_path, destination, FixedClock(START))
    token = await _token(service)

    async def update() -> None:
        new = NewCardDetails(expiry=(9, 2031))
        await service.update_card_details("acct_1", token, new, requester="t")

    destination.meanwhile = update
    with pytest.raises(UnstartedRefusalError):
        await service.forward("acct_1", token, _REQUEST)

    assert await _stored_cvc(vault_engine, token) == (None, None)
    destination.meanwhile = None
    # The card opens, as updated: refused by the destination again, not as tampered.
    with pytest.raises(UnstartedRefusalError):
        await service.forward("acct_1", token, replace(_REQUEST, reference="op_2"))
    assert destination.calls == 2


async def test_a_cvc_that_cannot_be_put_back_leaves_the_refusal_as_it_was(
    vault_engine: AsyncEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Told anything but the refusal, the core would take the authorization for one whose
    outcome is unknown, and look it up."""
    destination = FailingDestination(unstarted_overload_refusal("card network"))
    service = _service(vault_engine, tmp_path, destination, FixedClock(START))
    token = await _token(service)

    async def refuse_every_cvc_write() -> None:
        async with vault_engine.begin() as db:
            await db.execute(
                text(
                    "CREATE FUNCTION refuse_cvc() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'no'; END $$"
                )
            )
            await db.execute(
                text(
                    "CREATE TRIGGER refuse_cvc BEFORE UPDATE ON cards FOR EACH ROW "
                    "WHEN (NEW.cvc_ciphertext IS NOT NULL) EXECUTE FUNCTION refuse_cvc()"
                )
            )

    destination.meanwhile = refuse_every_cvc_write
    try:
        with caplog.at_level(logging.DEBUG), pytest.raises(UnstartedRefusalError):
            await service.forward("acct_1", token, _REQUEST)
    finally:
        async with vault_engine.begin() as db:
            await db.execute(text("DROP TRIGGER IF EXISTS refuse_cvc ON cards"))
            await db.execute(text("DROP FUNCTION IF EXISTS refuse_cvc()"))
    assert await _stored_cvc(vault_engine, token) == (None, None)
    assert "could not be put back" in caplog.text
    assert re.search(rf"(?<![0-9A-Za-z]){CVC}(?![0-9A-Za-z])", caplog.text) is None


async def _forward_events(service: VaultService, token: str) -> list[tuple[str, bool, str]]:
    events, _ = await service.list_audit_events(AuditFilter(limit=100, token=token))
    return sorted(
        (event.action.value, event.succeeded, event.reference)
        for event in events
        if event.action in (AuditAction.FORWARD, AuditAction.PUT_BACK_CVC)
    )


async def test_a_forward_refused_unstarted_is_audited_as_not_sent_with_its_cvc_put_back(
    vault_engine: AsyncEngine, tmp_path: Path
) -> None:
    """The forward's event, committed before the card left the vault, reads as granted: the
    log is append-only, so the forward is recorded again as not sent, and the CVC's return
    (or its staying destroyed) is recorded under the forward's reference."""
    clock = FixedClock(START)
    destination = FailingDestination(unstarted_overload_refusal("card network"))
    service = _service(vault_engine, tmp_path, destination, clock)
    restored = await _token(service)
    expiring = await _token(service)
    without_cvc = (
        await service.tokenize("acct_1", Secret(VISA), 12, 2030, None, requester="test")
    ).token

    with pytest.raises(UnstartedRefusalError):
        await service.forward("acct_1", restored, _REQUEST)
    with pytest.raises(UnstartedRefusalError):
        await service.forward("acct_1", without_cvc, _REQUEST)

    async def expire() -> None:
        clock.advance(60 * 60)

    destination.meanwhile = expire
    with pytest.raises(UnstartedRefusalError):
        await service.forward("acct_1", expiring, _REQUEST)

    assert await _forward_events(service, restored) == [
        ("forward", False, "op_1"),
        ("forward", True, "op_1"),
        ("put_back_cvc", True, "op_1"),
    ]
    assert await _forward_events(service, expiring) == [
        ("forward", False, "op_1"),
        ("forward", True, "op_1"),
        ("put_back_cvc", False, "op_1"),
    ]
    assert await _forward_events(service, without_cvc) == [
        ("forward", False, "op_1"),
        ("forward", True, "op_1"),
    ]
    events, _ = await service.list_audit_events(AuditFilter(limit=100, token=restored))
    unsent = [e for e in events if e.action is AuditAction.FORWARD and not e.succeeded]
    assert "not sent" in unsent[0].purpose
    assert unsent[0].destination == "acquirer"
