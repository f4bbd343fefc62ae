"""`remit vault ...`: key management against a running vault, over its gRPC API, and the
listing of its audit log.

The CLI never reads the key file itself: the vault process owns the keys, and every operation
lands in its audit log under the requester "cli".
"""

from __future__ import annotations

import asyncio
import re
import shlex
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Final

import grpc

from remit.command_exits import CommandRefusedError
from remit.config import PlatformConfig
from remit.core.jsonview import enum_wire_values
from remit.core.shell_operator import shell_operator
from remit.core.told_text import quoted_told, unprintable_character
from remit.grpcutil.call_failures import call_failed
from remit.grpcutil.internal_auth import InternalAccess, internal_channel
from remit.vault.audit_arguments import MAX_AUDIT_LIMIT, AuditQuery
from remit.vault.domain import MAX_TOLD_LENGTH
from remit_api.vault.v1 import vault_pb2, vault_pb2_grpc

REQUESTER: Final = "cli"
TIMEOUT_S: Final = 30.0
# How long `rotate-key --wait` and `reseal-cards` wait for rows another pass holds before they
# say those could not be moved, and how often they ask meanwhile.
STALL_S: Final = 5.0
STALL_POLL_S: Final = 0.2


class AdminError(CommandRefusedError):
    """The vault refused, failed or could not be reached; the message says why."""


def _stub(channel: grpc.aio.Channel) -> vault_pb2_grpc.VaultServiceAsyncStub:
    return vault_pb2_grpc.VaultServiceStub(channel)


async def _batches_until_done(
    batch: Callable[[], Awaitable[tuple[int, int]]],
    stalled: Callable[[int, int], AdminError],
) -> int:
    """Run `batch` (which answers how many it moved and how many remain) until none remain;
    how many were moved here in all. A batch that moves nothing may meet the vault's own
    background pass holding those rows (the batches skip locked rows), which moves them itself,
    so what remains still goes down; or they do not open (the vault logs each), and asking
    again would only spin. So wait while what remains goes down, and raise `stalled(total,
    remaining)` once it has stood still for STALL_S."""
    total = 0
    stalled_at: tuple[float, int] | None = None
    while True:
        moved, remaining = await batch()
        total += moved
        if remaining == 0:
            return total
        if moved > 0:
            stalled_at = None
            continue
        now = time.monotonic()
        if stalled_at is None or remaining != stalled_at[1]:
            stalled_at = (now, remaining)
        elif now - stalled_at[0] >= STALL_S:
            raise stalled(total, remaining)
        await asyncio.sleep(STALL_POLL_S)


async def rotate_key(target: str, access: InternalAccess, wait: bool) -> list[str]:
    async with internal_channel(target, access) as channel:
        stub = _stub(channel)
        rotated = await stub.RotateKey(
            vault_pb2.RotateKeyRequest(requester=REQUESTER), timeout=TIMEOUT_S
        )
        lines = [f"key version {rotated.key_version} now wraps new data keys"]
        if not wait:
            lines.append("older data keys are re-wrapped in the background")
            return lines
        started = time.monotonic()

        async def rewrap_batch() -> tuple[int, int]:
            progress = await stub.RewrapDataKeys(
                vault_pb2.RewrapDataKeysRequest(requester=REQUESTER), timeout=TIMEOUT_S
            )
            return progress.rewrapped, progress.remaining

        def rewrap_stalled(total: int, remaining: int) -> AdminError:
            return AdminError(
                f"key version {rotated.key_version} now wraps new data keys and "
                f"{total} older data keys were re-wrapped here, but {remaining} "
                "could not be (see the vault's log); older key versions must stay allowed"
            )

        total = await _batches_until_done(rewrap_batch, rewrap_stalled)
        lines.append(f"re-wrapped {total} data keys in {time.monotonic() - started:.1f}s")
        return lines


async def reseal_cards(target: str, access: InternalAccess) -> list[str]:
    """Re-seal every card still sealed in a format before the newest, batch after batch. As for
    `rotate-key --wait`, a batch that moves nothing may be the vault's own background pass
    holding those cards: wait while what remains goes down, and give up once it has stood
    still for STALL_S (those cards do not open; the vault logs each)."""
    async with internal_channel(target, access) as channel:
        stub = _stub(channel)
        started = time.monotonic()

        async def reseal_batch() -> tuple[int, int]:
            progress = await stub.ResealCards(
                vault_pb2.ResealCardsRequest(requester=REQUESTER), timeout=TIMEOUT_S
            )
            return progress.resealed, progress.remaining

        def reseal_stalled(total: int, remaining: int) -> AdminError:
            return AdminError(
                f"{total} cards were re-sealed here, but {remaining} could not be "
                "(see the vault's log); copies of their rows stay readable while the key "
                "version that wraps their data key is kept"
            )

        total = await _batches_until_done(reseal_batch, reseal_stalled)
    return [
        f"re-sealed {total} cards under fresh data keys in {time.monotonic() - started:.1f}s",
        "every card is now bound to its account and metadata; rotate-key --wait, retire-keys "
        "and remove-key-version then put copies of the old rows beyond use",
    ]


async def _status(target: str, access: InternalAccess) -> list[str]:
    async with internal_channel(target, access) as channel:
        status = await _stub(channel).GetKeyStatus(
            vault_pb2.GetKeyStatusRequest(), timeout=TIMEOUT_S
        )
    lines = [
        f"current version             {status.current_version}",
        f"minimum decryption version  {status.minimum_decryption_version}",
        f"cards to re-seal            {status.token_bound_cards}",
    ]
    for version in status.versions:
        created = version.created.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
        lines.append(
            f"  v{version.version:<4} created {created}  data keys {version.data_key_count}"
        )
    return lines


async def _retire(target: str, access: InternalAccess, minimum: int) -> list[str]:
    async with internal_channel(target, access) as channel:
        reply = await _stub(channel).SetMinimumDecryptionVersion(
            vault_pb2.SetMinimumDecryptionVersionRequest(
                minimum_version=minimum, requester=REQUESTER
            ),
            timeout=TIMEOUT_S,
        )
    return [f"key versions below {reply.minimum_version} can no longer decrypt"]


async def remove_key_version(target: str, access: InternalAccess, version: int) -> list[str]:
    async with internal_channel(target, access) as channel:
        reply = await _stub(channel).RemoveKeyVersion(
            vault_pb2.RemoveKeyVersionRequest(version=version, requester=REQUESTER),
            timeout=TIMEOUT_S,
        )
    return [
        f"key version {reply.version} removed from the key file; data keys wrapped under it "
        "can no longer be unwrapped",
        "copies of the key file from before this (backups included) still hold it",
    ]


# The longest operator a declaration names: the requester it is recorded under (`cli:` and the
# operator) is at most the vault's `MAX_TOLD_LENGTH`.
MAX_DECLARER_LENGTH: Final = MAX_TOLD_LENGTH - len(f"{REQUESTER}:")


def declarer(operator: str) -> str:
    """The requester a declaration is recorded under: the CLI, and the operator who ran it
    (`operator`, else the shell's user and host, `remit.core.shell_operator`, cut to fit).
    Refused before anything is sent when it is too long or holds a control character or a line
    break, as the vault would refuse it: the declaration and its audit event keep it for good."""
    operator = operator or shell_operator()[:MAX_DECLARER_LENGTH]
    if len(operator) > MAX_DECLARER_LENGTH:
        raise AdminError(
            f"--operator must be at most {MAX_DECLARER_LENGTH} characters, got {len(operator)}"
        )
    if (char := unprintable_character(operator)) is not None:
        raise AdminError(
            f"--operator must not contain control characters or line breaks (found {char})"
        )
    return f"{REQUESTER}:{operator}"


async def declare_key_version_lost(
    target: str, access: InternalAccess, version: int, operator: str
) -> list[str]:
    requester = declarer(operator)
    async with internal_channel(target, access) as channel:
        reply = await _stub(channel).DeclareKeyVersionLost(
            vault_pb2.DeclareKeyVersionLostRequest(version=version, requester=requester),
            timeout=TIMEOUT_S,
        )
    declared_at = reply.declared_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S UTC")
    # Quoted: a declaration recorded before the vault refused line breaks in who made it
    # would print as more lines than one.
    declared_by = quoted_told(reply.declared_by)
    first = (
        f"key version {reply.version} declared lost by {declared_by} at {declared_at}"
        if reply.newly_declared
        else f"key version {reply.version} was declared lost already, by {declared_by} "
        f"at {declared_at}"
    )
    return [
        first,
        f"{reply.cards} cards not deleted are under it: each is refused from now on as under a "
        "retired key version, and the payments held for want of it (card_key_unavailable) end "
        "on their next retry with what the acquirer holds for them",
    ]


def _moment(flag: str, text: str) -> datetime:
    """A unix timestamp or an ISO 8601 time (UTC unless it says otherwise)."""
    # ASCII only: `str.isdigit` is true of "²" too, which `int` cannot read.
    if text.isascii() and text.isdigit():
        return datetime.fromtimestamp(int(text), UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise AdminError(
            f"{flag} must be a unix timestamp or ISO 8601 time, got {text!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _audit_request(query: AuditQuery) -> vault_pb2.ListAuditEventsRequest:
    """The request for `query`, refused before anything is sent when a flag is out of range."""
    if not 1 <= query.limit <= MAX_AUDIT_LIMIT:
        raise AdminError(f"--limit must be between 1 and {MAX_AUDIT_LIMIT}, got {query.limit}")
    request = vault_pb2.ListAuditEventsRequest(limit=query.limit)
    for field, value in (
        ("starting_after", query.starting_after),
        ("account_id", query.account),
        ("vault_token", query.token),
        ("requester", query.requester),
    ):
        if value is not None:
            setattr(request, field, value)
    if query.action is not None:
        request.action = vault_pb2.AuditAction.Value(f"AUDIT_ACTION_{query.action.upper()}")
    if query.since is not None:
        request.created.gte.FromDatetime(_moment("--since", query.since))
    if query.before is not None:
        request.created.lt.FromDatetime(_moment("--before", query.before))
    return request


# An id, token, account or destination as the vault makes or names them, printed as it is;
# anything else a caller named (a space, a quote, a control character) is quoted.
_PLAIN: Final = re.compile(r"[A-Za-z0-9_.:@-]+")


def _shown(value: str) -> str:
    return value if _PLAIN.fullmatch(value) else quoted_told(value)


def audit_event_line(event: vault_pb2.AuditEvent) -> str:
    """One event as `remit vault audit` prints it: when, its id, the action, whether it
    succeeded, who asked and why, then what it concerned (account, token, destination,
    reference, key version) when it names it. The requester, the purpose and the reference,
    which the caller names, are quoted (`quoted_told`): a line break in one, recorded before
    the vault refused them, cannot pass for another event."""
    action = enum_wire_values(vault_pb2.AuditAction.DESCRIPTOR).get(event.action)
    line = (
        f"{event.created.ToDatetime(tzinfo=UTC).isoformat()}  {event.id}  "
        f"{action or f'action {event.action}'}  "
        f"{'succeeded' if event.succeeded else 'failed'}  by {quoted_told(event.requester)}  "
        f"purpose {quoted_told(event.purpose)}"
    )
    for label, value in (
        ("account", event.account_id),
        ("token", event.vault_token),
        ("destination", event.destination),
    ):
        if value:
            line += f"  {label} {_shown(value)}"
    if event.reference:
        line += f"  reference {quoted_told(event.reference)}"
    if event.key_version:
        line += f"  key version {event.key_version}"
    return line


async def list_audit_events(target: str, access: InternalAccess, query: AuditQuery) -> list[str]:
    """One page of the vault's audit log, newest first; the last line says how to ask for the
    next when there is one."""
    request = _audit_request(query)
    async with internal_channel(target, access) as channel:
        page = await _stub(channel).ListAuditEvents(request, timeout=TIMEOUT_S)
    lines = [audit_event_line(event) for event in page.data]
    if not lines:
        older = f" older than {query.starting_after}" if query.starting_after else ""
        filtered = " matching the filters" if query.filter_flags()[:-2] else ""
        lines.append(f"no audit events{older}{filtered}")
    if page.has_more:
        flags = [*query.filter_flags(), "--starting-after", page.data[-1].id]
        lines.append(f"more: remit vault audit {shlex.join(flags)}")
    return lines


def run_admin(
    config: PlatformConfig,
    command: str,
    *,
    wait: bool = False,
    minimum: int = 0,
    version: int = 0,
    operator: str = "",
    audit: AuditQuery | None = None,
) -> list[str]:
    target, access = config.vault.target, InternalAccess.of(config)
    try:
        if command == "rotate-key":
            return asyncio.run(rotate_key(target, access, wait))
        if command == "key-status":
            return asyncio.run(_status(target, access))
        if command == "retire-keys":
            return asyncio.run(_retire(target, access, minimum))
        if command == "remove-key-version":
            return asyncio.run(remove_key_version(target, access, version))
        if command == "declare-key-version-lost":
            return asyncio.run(declare_key_version_lost(target, access, version, operator))
        if command == "reseal-cards":
            return asyncio.run(reseal_cards(target, access))
        if command == "audit":
            return asyncio.run(list_audit_events(target, access, audit or AuditQuery()))
    except grpc.aio.AioRpcError as error:
        raise call_failed(error, "vault", target, AdminError) from None
    raise AdminError(f"unknown vault command {command!r}")
