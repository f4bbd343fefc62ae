"""Declaring a key version lost for good (`remit vault declare-key-version-lost`): a card whose
data key is wrapped under a version missing from the key ring is refused as `vault_key_missing`,
which holds its payment until the version is back; once an operator declares that version lost,
the vault refuses it as under a retired version (`vault_key_retired`), which the core ends with
what the network holds. The declaration is kept in the vault database with who made it and
when, audited, idempotent, and refused for a version the key ring still holds or never
numbered."""

import os
import pwd
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.grpcutil.errors import detail_from_rpc_error
from remit.vault.crypto import KeyRing
from remit.vault.forwarding import grpc_destinations
from remit.vault.forwards_in_flight import forward_may_still_commit_for
from remit.vault.grpc import VaultServicer
from remit.vault.keystore import FileKeyStore
from remit.vault.service import VaultService
from remit.vault.tables import lost_key_versions
from remit_api.acquirer.v1 import acquirer_pb2
from remit_api.vault.v1 import vault_pb2, vault_pb2_grpc
from tests.integration.test_admin_command_exits import serving
from tests.integration.vault.conftest import START, VaultHarness
from tests.support.commands import remit
from tests.support.fake_acquirer import RecordingAcquirer, running_acquirer
from tests.support.vault import RunningVault, running_vault

pytestmark = pytest.mark.anyio

NUMBER = "4242424242424242"


async def _tokenize(vault: RunningVault) -> str:
    reply = await vault.stub.TokenizeCard(
        vault_pb2.TokenizeCardRequest(
            account_id="acct_1", number=NUMBER, exp_month=12, exp_year=2030, cvc="123",
            requester="test",
        )
    )  # fmt: skip
    return reply.vault_token


async def _lose_version_1(vault: RunningVault, keys: FileKeyStore) -> KeyRing:
    """Rotate to version 2, then take version 1 out of the key file behind the vault's back
    (removed too early, every copy of the file gone with it); the key ring as it was."""
    await vault.stub.RotateKey(vault_pb2.RotateKeyRequest(requester="operator"))
    with keys.locked():
        whole = keys.load()
        keys.save(whole.without_version(1))
    return whole


def _forward(token: str, reference: str) -> vault_pb2.ForwardAuthorizationRequest:
    return vault_pb2.ForwardAuthorizationRequest(
        account_id="acct_1", vault_token=token, destination="acquirer", amount=2000,
        currency="usd", reference=reference, purpose="payment_intent.confirm pi_test",
        requester="core",
    )  # fmt: skip


async def _forward_refused(vault: RunningVault, token: str, reference: str) -> Any:
    """The status and the error detail (code, message) of a forward that must be refused."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await vault.stub.ForwardAuthorization(_forward(token, reference))
    detail = detail_from_rpc_error(caught.value)
    assert detail is not None
    assert NUMBER not in detail.message
    assert NUMBER[-4:] not in detail.message
    return caught.value.code(), detail.code, detail.message


async def _declare(
    vault: RunningVault, version: int, requester: str = "cli:alice"
) -> vault_pb2.DeclareKeyVersionLostResponse:
    return await vault.stub.DeclareKeyVersionLost(
        vault_pb2.DeclareKeyVersionLostRequest(version=version, requester=requester)
    )


async def _declaration_events(vault: RunningVault) -> list[tuple[str, str, bool, int]]:
    listed = await vault.stub.ListAuditEvents(
        vault_pb2.ListAuditEventsRequest(
            action=vault_pb2.AUDIT_ACTION_DECLARE_KEY_VERSION_LOST, limit=100
        )
    )
    return sorted((e.requester, e.purpose, e.succeeded, e.key_version) for e in listed.data)


async def _declared_rows(engine: AsyncEngine) -> list[tuple[str, int, str]]:
    async with engine.connect() as db:
        rows = await db.execute(
            select(
                lost_key_versions.c.key_ring,
                lost_key_versions.c.version,
                lost_key_versions.c.declared_by,
            )
        )
        return sorted((row.key_ring, row.version, row.declared_by) for row in rows)


async def test_a_card_under_a_version_declared_lost_is_refused_as_under_a_retired_one(
    harness: VaultHarness,
) -> None:
    vault = harness.vault
    token = await _tokenize(vault)
    whole = await _lose_version_1(vault, harness.keys)
    status, code, _ = await _forward_refused(vault, token, "ch_1")
    assert (status, code) == (grpc.StatusCode.FAILED_PRECONDITION, "vault_key_missing")

    declared = await _declare(vault, 1)
    assert (declared.version, declared.declared_by, declared.newly_declared) == (
        1,
        "cli:alice",
        True,
    )
    assert declared.declared_at.ToDatetime(START.tzinfo) == START
    assert declared.cards == 1

    status, code, message = await _forward_refused(vault, token, "ch_1")
    assert (status, code) == (grpc.StatusCode.FAILED_PRECONDITION, "vault_key_retired")
    assert "nothing was sent" in message
    assert 'declared lost by "cli:alice" at ' in message
    assert harness.acquirer.requests == []

    # Durable, in the vault database, and audited with who made it.
    assert await _declared_rows(harness.engine) == [("card-kek", 1, "cli:alice")]
    assert await _declaration_events(vault) == [
        ("cli:alice", "declare key version 1 lost", True, 1)
    ]

    # The key file restored with the version after all: its cards open again.
    with harness.keys.locked():
        harness.keys.save(whole)
    reply = await vault.stub.ForwardAuthorization(_forward(token, "ch_1"))
    assert reply.result.approved


async def test_declaring_it_again_keeps_the_first_declaration(harness: VaultHarness) -> None:
    vault = harness.vault
    await _tokenize(vault)
    await _lose_version_1(vault, harness.keys)
    await _declare(vault, 1, "cli:alice")
    harness.clock.advance(60)

    again = await _declare(vault, 1, "cli:bob")

    assert (again.version, again.declared_by, again.newly_declared) == (1, "cli:alice", False)
    assert again.declared_at.ToDatetime(START.tzinfo) == START
    assert await _declared_rows(harness.engine) == [("card-kek", 1, "cli:alice")]
    assert await _declaration_events(vault) == [
        ("cli:alice", "declare key version 1 lost", True, 1),
        ("cli:bob", "declare key version 1 lost: declared already", True, 1),
    ]


async def test_a_version_the_key_ring_holds_or_never_numbered_is_not_declared_lost(
    harness: VaultHarness,
) -> None:
    vault = harness.vault
    await _tokenize(vault)
    await vault.stub.RotateKey(vault_pb2.RotateKeyRequest(requester="operator"))
    await vault.stub.RewrapDataKeys(vault_pb2.RewrapDataKeysRequest(requester="operator"))
    # Retired, but still in the key file: retirement, not loss.
    await vault.stub.SetMinimumDecryptionVersion(
        vault_pb2.SetMinimumDecryptionVersionRequest(minimum_version=2, requester="operator")
    )

    async def refused(version: int) -> tuple[grpc.StatusCode, str, str]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _declare(vault, version)
        detail = detail_from_rpc_error(caught.value)
        assert detail is not None
        return caught.value.code(), detail.code, detail.param

    for present in (1, 2):  # retired, and current
        assert await refused(present) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "vault_key_present",
            "version",
        )
    for never in (0, 3):
        code, _, param = await refused(never)
        assert (code, param) == (grpc.StatusCode.INVALID_ARGUMENT, "version")
    assert await _declared_rows(harness.engine) == []
    assert [
        (purpose, succeeded) for _, purpose, succeeded, _ in await _declaration_events(vault)
    ] == [(f"declare key version {v} lost: refused", False) for v in (0, 1, 2, 3)]


class LosingTheAnswer(RecordingAcquirer):
    """Authorizes, but its answer never reaches the vault: the outcome stays unknown there."""

    async def Authorize(  # noqa: N802 (the RPC name)
        self, request: acquirer_pb2.AuthorizeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> acquirer_pb2.AuthorizeResponse:
        await super().Authorize(request, context)
        await context.abort(grpc.StatusCode.UNAVAILABLE, "the answer was lost")
        raise AssertionError("abort raises")


async def test_a_forward_that_may_still_commit_is_not_refused_for_a_lost_version(
    vault_engine: AsyncEngine, tmp_path: Path
) -> None:
    """As for a retired version: while a forward of the reference the vault sent may still
    commit at the acquirer, it answers that the outcome is unknown, so that the core looks the
    reference up again rather than fail the attempt as never sent."""
    keys = FileKeyStore(tmp_path / "keys.json")
    keys.ensure_exists()
    clock = FixedClock(START)
    async with (
        running_acquirer(LosingTheAnswer()) as (acquirer, target),
        running_vault(vault_engine, keys, {"acquirer": target}, clock=clock) as vault,
    ):
        token = await _tokenize(vault)
        with pytest.raises(grpc.aio.AioRpcError) as lost:
            await vault.stub.ForwardAuthorization(_forward(token, "ch_1"))
        assert lost.value.code() == grpc.StatusCode.UNAVAILABLE
        await _lose_version_1(vault, keys)
        await _declare(vault, 1)

        status, code, _ = await _forward_refused(vault, token, "ch_1")
        assert status == grpc.StatusCode.UNAVAILABLE
        assert code != "vault_key_retired"

        clock.advance(forward_may_still_commit_for().total_seconds() + 1)
        status, code, _ = await _forward_refused(vault, token, "ch_1")
        assert (status, code) == (grpc.StatusCode.FAILED_PRECONDITION, "vault_key_retired")
        assert len(acquirer.requests) == 1


@asynccontextmanager
async def _served_with_the_internal_token(
    vault_engine: AsyncEngine, keys: FileKeyStore
) -> AsyncIterator[str]:
    """The vault served as `remit vault` serves it (the internal token checked); its port."""
    service = VaultService(vault_engine, keys, grpc_destinations({}), clock=FixedClock(START))

    def register(server: grpc.aio.Server) -> None:
        vault_pb2_grpc.add_VaultServiceServicer_to_server(VaultServicer(service), server)

    try:
        async with serving(register) as port:
            yield port
    finally:
        await service.close()


async def test_the_command_declares_once_and_refuses_a_version_in_the_key_file(
    harness: VaultHarness, tmp_path: Path
) -> None:
    await _tokenize(harness.vault)
    await _lose_version_1(harness.vault, harness.keys)
    async with _served_with_the_internal_token(harness.engine, harness.keys) as port:

        async def declare(version: int) -> Any:
            return await remit(
                "vault", "declare-key-version-lost", "--version", str(version),
                "--operator", "alice", tmp_path=tmp_path, REMIT_VAULT_PORT=port,
            )  # fmt: skip

        first = await declare(1)
        again = await declare(1)
        present = await declare(2)

    assert (first.returncode, first.stderr) == (0, "")
    assert first.stdout.splitlines()[0] == (
        f'key version 1 declared lost by "cli:alice" at {START:%Y-%m-%d %H:%M:%S} UTC'
    )
    assert "1 cards not deleted are under it" in first.stdout
    assert (again.returncode, again.stderr) == (0, "")
    assert again.stdout.startswith('key version 1 was declared lost already, by "cli:alice"')
    assert present.returncode == 2
    line = present.failure_line()
    assert line.startswith("remit vault declare-key-version-lost: ")
    assert "Key version 2 is still in the vault's key file: it is not lost" in line
    assert present.stdout == ""
    assert await _declared_rows(harness.engine) == [("card-kek", 1, "cli:alice")]


# A login name (USER, LOGNAME) set to a line that reads as another declaration.
FORGED = "alice\nkey version 2 declared lost by cli:bob at 2026-01-02 03:04:05 UTC"


async def test_the_command_names_the_uids_login_name_not_the_environments(
    harness: VaultHarness, tmp_path: Path
) -> None:
    await _tokenize(harness.vault)
    await _lose_version_1(harness.vault, harness.keys)
    async with _served_with_the_internal_token(harness.engine, harness.keys) as port:
        declared = await remit(
            "vault", "declare-key-version-lost", "--version", "1", tmp_path=tmp_path,
            REMIT_VAULT_PORT=port, USER=FORGED, LOGNAME=FORGED, LNAME=FORGED, USERNAME=FORGED,
        )  # fmt: skip

    operator = f"cli:{pwd.getpwuid(os.getuid()).pw_name}@{socket.gethostname()}"
    assert (declared.returncode, declared.stderr) == (0, "")
    lines = declared.stdout.splitlines()
    assert lines[0] == (
        f'key version 1 declared lost by "{operator}" at {START:%Y-%m-%d %H:%M:%S} UTC'
    )
    assert len(lines) == 2
    assert "cli:bob" not in declared.stdout
    assert await _declared_rows(harness.engine) == [("card-kek", 1, operator)]
    assert await _declaration_events(harness.vault) == [
        (operator, "declare key version 1 lost", True, 1)
    ]


async def test_the_command_refuses_an_operator_with_a_line_break_and_declares_nothing(
    harness: VaultHarness, tmp_path: Path
) -> None:
    await _tokenize(harness.vault)
    await _lose_version_1(harness.vault, harness.keys)
    async with _served_with_the_internal_token(harness.engine, harness.keys) as port:
        refused = await remit(
            "vault", "declare-key-version-lost", "--version", "1", "--operator", FORGED,
            tmp_path=tmp_path, REMIT_VAULT_PORT=port,
        )  # fmt: skip

    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.failure_line() == (
        "remit vault declare-key-version-lost: --operator must not contain control characters "
        "or line breaks (found U+000A)"
    )
    assert await _declared_rows(harness.engine) == []
    assert await _declaration_events(harness.vault) == []


@pytest.mark.parametrize("separator", ["\n", "\r", "\x1b", "\u2028", "\x85"])
async def test_the_vault_refuses_a_requester_with_a_control_character(
    harness: VaultHarness, separator: str
) -> None:
    vault = harness.vault
    await _tokenize(vault)
    await _lose_version_1(vault, harness.keys)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _declare(vault, 1, f"cli:alice{separator}cli:bob")

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = detail_from_rpc_error(caught.value)
    assert detail is not None
    assert detail.param == "requester"
    assert f"(found U+{ord(separator):04X})" in detail.message
    assert await _declared_rows(harness.engine) == []
    assert await _declaration_events(vault) == []


async def test_the_vault_refuses_a_requester_longer_than_200_characters(
    harness: VaultHarness,
) -> None:
    vault = harness.vault
    await _tokenize(vault)
    await _lose_version_1(vault, harness.keys)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _declare(vault, 1, "cli:" + "a" * 197)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = detail_from_rpc_error(caught.value)
    assert detail is not None
    assert detail.param == "requester"
    assert detail.message == "requester must be at most 200 characters (got 201)."
    assert await _declared_rows(harness.engine) == []
    assert await _declaration_events(vault) == []

    longest = "cli:" + "a" * 196
    assert (await _declare(vault, 1, longest)).declared_by == longest
    assert await _declared_rows(harness.engine) == [("card-kek", 1, longest)]


async def test_the_vault_refuses_a_forward_whose_purpose_is_longer_than_200_characters(
    harness: VaultHarness,
) -> None:
    vault = harness.vault
    token = await _tokenize(vault)
    request = _forward(token, "ch_1")
    request.purpose = "payment_intent.confirm pi_" + "1" * 175

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await vault.stub.ForwardAuthorization(request)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = detail_from_rpc_error(caught.value)
    assert detail is not None
    assert detail.param == "purpose"
    assert detail.message == "purpose must be at most 200 characters (got 201)."
    assert harness.acquirer.requests == []
    forwards = await vault.stub.ListAuditEvents(
        vault_pb2.ListAuditEventsRequest(action=vault_pb2.AUDIT_ACTION_FORWARD, limit=100)
    )
    assert list(forwards.data) == []


async def test_the_command_refuses_an_operator_too_long_for_the_vault_and_declares_nothing(
    harness: VaultHarness, tmp_path: Path
) -> None:
    await _tokenize(harness.vault)
    await _lose_version_1(harness.vault, harness.keys)
    async with _served_with_the_internal_token(harness.engine, harness.keys) as port:
        refused = await remit(
            "vault", "declare-key-version-lost", "--version", "1", "--operator", "a" * 197,
            tmp_path=tmp_path, REMIT_VAULT_PORT=port,
        )  # fmt: skip

    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.failure_line() == (
        "remit vault declare-key-version-lost: --operator must be at most 196 characters, got 197"
    )
    assert await _declared_rows(harness.engine) == []


async def test_a_forward_refused_for_a_declaration_with_a_line_break_names_it_quoted(
    harness: VaultHarness,
) -> None:
    """One recorded before the vault refused such names keeps it: the refusal quotes it, so
    that it cannot pass for another line where the refusal is logged or shown."""
    vault = harness.vault
    token = await _tokenize(vault)
    await _lose_version_1(vault, harness.keys)
    async with harness.engine.begin() as db:
        await db.execute(
            insert(lost_key_versions).values(
                key_ring="card-kek", version=1, declared_by=f"cli:{FORGED}", declared_at=START
            )
        )

    status, code, message = await _forward_refused(vault, token, "ch_1")

    assert (status, code) == (grpc.StatusCode.FAILED_PRECONDITION, "vault_key_retired")
    assert "\n" not in message
    assert (
        'was declared lost by "cli:alice\\nkey version 2 declared lost by cli:bob at '
        f'2026-01-02 03:04:05 UTC" at {START.isoformat()}.'
    ) in message
    assert harness.acquirer.requests == []


async def test_the_vault_refuses_a_forward_whose_purpose_holds_a_line_break(
    harness: VaultHarness,
) -> None:
    vault = harness.vault
    token = await _tokenize(vault)
    request = _forward(token, "ch_1")
    request.purpose = "payment_intent.confirm pi_1\nforged"

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await vault.stub.ForwardAuthorization(request)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = detail_from_rpc_error(caught.value)
    assert detail is not None
    assert detail.param == "purpose"
    assert harness.acquirer.requests == []
    forwards = await vault.stub.ListAuditEvents(
        vault_pb2.ListAuditEventsRequest(action=vault_pb2.AUDIT_ACTION_FORWARD, limit=100)
    )
    assert list(forwards.data) == []


async def test_a_declaration_recorded_with_a_line_break_prints_as_one_quoted_line(
    harness: VaultHarness, tmp_path: Path
) -> None:
    """One recorded before the vault refused such names keeps it: printed escaped."""
    await _tokenize(harness.vault)
    await _lose_version_1(harness.vault, harness.keys)
    async with harness.engine.begin() as db:
        await db.execute(
            insert(lost_key_versions).values(
                key_ring="card-kek", version=1, declared_by=f"cli:{FORGED}", declared_at=START
            )
        )
    async with _served_with_the_internal_token(harness.engine, harness.keys) as port:
        again = await remit(
            "vault", "declare-key-version-lost", "--version", "1", "--operator", "carol",
            tmp_path=tmp_path, REMIT_VAULT_PORT=port,
        )  # fmt: skip

    assert (again.returncode, again.stderr) == (0, "")
    lines = again.stdout.splitlines()
    assert lines[0] == (
        'key version 1 was declared lost already, by "cli:alice\\nkey version 2 declared lost '
        f'by cli:bob at 2026-01-02 03:04:05 UTC" at {START:%Y-%m-%d %H:%M:%S} UTC'
    )
    assert len(lines) == 2
