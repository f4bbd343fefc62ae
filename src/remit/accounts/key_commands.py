"""`remit accounts keys list|create|revoke|roll|audit`: an account's API keys, through
AccountsService.

The commands act as the admin role (`remit.grpcutil.role_permissions`), the only one that may
create and revoke keys. A new key's plaintext is printed once, when it is made; the core keeps
only its digest, so it can never be shown again. Revoking an account's last working secret key
would lock its servers out, so that needs `--force`; rolling makes the new key first and lets
the old one work on for a while (`--expire-old-after`), so that its users can move over.

Each change is recorded by the core with the change (`remit.accounts.key_events`), under the
operator running the command (`remit.core.shell_operator`) and its `--reason`; `audit`
lists the record, newest first, a page at a time.

Creating and rolling send an idempotency key (`remit.accounts.command_keys`): run again under
the key of a run that got no answer, they make no second key. A roll run again so does not set
the old key to stop: the new key's plaintext was shown to no one, so nobody may hold it.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO, cast

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from remit.accounts.command_keys import command_idempotency_key, made_perhaps
from remit.accounts.domain import MAX_KEY_EXPIRY
from remit.accounts.key_events import MAX_AUDIT_LIMIT, MAX_REASON_LENGTH
from remit.command_exits import CommandRefusedError, CommandTemporaryFailureError
from remit.config import PlatformConfig
from remit.core.shell_operator import shell_operator
from remit.core.told_text import quoted_told, unprintable_character
from remit.grpcutil.call_failures import call_failed
from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.internal_auth import InternalAccess, internal_sync_channel
from remit.grpcutil.metadata import IDEMPOTENCY_KEY
from remit_api.accounts.v1 import accounts_pb2, accounts_pb2_grpc

CALL_TIMEOUT_S = 10.0
# The core lets a revoked key work on for at most this long (`remit.accounts.domain`).
MAX_EXPIRE_OLD_AFTER_HOURS = MAX_KEY_EXPIRY.total_seconds() / 3600
_PAGE = 100


class KeyCommandError(CommandRefusedError):
    """The command cannot do what was asked; the message says why and what to do instead."""


@dataclass(frozen=True)
class KeyLine:
    """One key as the commands show it (never the key itself: it is not kept)."""

    key: accounts_pb2.ApiKey

    @property
    def secret(self) -> bool:
        return bool(self.key.kind == accounts_pb2.API_KEY_KIND_SECRET)

    def stops_at(self) -> datetime | None:
        return (
            self.key.revoked_at.ToDatetime(tzinfo=UTC) if self.key.HasField("revoked_at") else None
        )

    def masked(self) -> str:
        return f"{self.key.prefix}_...{self.key.last4}"  # as the facade masks keys

    def status(self, moment: datetime) -> str:
        stop = self.stops_at()
        if stop is None:
            return "active"
        if stop > moment:
            return f"active until {stop.isoformat()}"
        return f"revoked {stop.isoformat()}"


class KeyCommands:
    """The key commands against one platform's core."""

    def __init__(
        self,
        stub: accounts_pb2_grpc.AccountsServiceStub,
        out: TextIO,
        core_target: str,
        operator: str = "",
    ) -> None:
        self._stub = stub
        self._out = out
        self._core_target = core_target
        # Named in the audit record of every change the commands make.
        self._operator = operator

    def keys(self, account_id: str, *, include_revoked: bool) -> list[KeyLine]:
        found: list[KeyLine] = []
        request = accounts_pb2.ListApiKeysRequest(
            account_id=account_id, limit=_PAGE, include_revoked=include_revoked
        )
        while True:
            page = self._stub.ListApiKeys(request, timeout=CALL_TIMEOUT_S)
            found.extend(KeyLine(key) for key in page.data)
            if not page.has_more or not page.data:
                return found
            request.starting_after = page.data[-1].id

    def list(self, account_id: str, *, include_revoked: bool) -> int:
        now = datetime.now(UTC)
        lines = self.keys(account_id, include_revoked=include_revoked)
        if not lines:
            print(
                f"{account_id} has no {'' if include_revoked else 'working '}keys", file=self._out
            )
        for line in lines:
            created = line.key.created.ToDatetime(tzinfo=UTC).isoformat()
            print(
                f"{line.key.id}  {line.masked():<20}  created {created}  {line.status(now)}",
                file=self._out,
            )
        return 0

    def create(
        self, account_id: str, *, publishable: bool, idempotency_key: str, reason: str = ""
    ) -> int:
        """Make the key under `idempotency_key` (`remit.accounts.command_keys`); a run under
        the key of one that made it already shows which key that was, not its plaintext."""
        _check_reason(reason)
        kind = (
            accounts_pb2.API_KEY_KIND_PUBLISHABLE
            if publishable
            else accounts_pb2.API_KEY_KIND_SECRET
        )
        made = self._create_once(account_id, kind, idempotency_key, reason=reason)
        if made.plaintext_key:
            self._show_new(made)
        else:
            self._show_made_before(account_id, KeyLine(made.api_key))
        return 0

    def revoke(
        self,
        account_id: str,
        key_id: str,
        *,
        force: bool,
        expire_after_hours: float = 0.0,
        reason: str = "",
    ) -> int:
        _check_hours("--expire-after", expire_after_hours)
        _check_reason(reason)
        lines = self.keys(account_id, include_revoked=False)
        target = next((line for line in lines if line.key.id == key_id), None)
        if target is None:
            raise KeyCommandError(f"{account_id} has no working key {key_id}")
        others = [
            line for line in lines
            if line.secret and line.key.id != key_id and line.stops_at() is None
        ]  # fmt: skip
        if target.secret and not others and not force:
            raise KeyCommandError(
                f"{key_id} is the last secret key of {account_id} with no end set: revoking "
                "it locks the account's servers out of the API. Roll it instead "
                "(remit accounts keys roll), or pass --force."
            )
        after = _duration(expire_after_hours) if expire_after_hours else None
        revoked = KeyLine(self._revoke(account_id, key_id, after, reason=reason).api_key)
        stop = revoked.stops_at()
        if expire_after_hours and stop is not None:
            print(f"{key_id} ({revoked.masked()}) keeps working until {stop.isoformat()}",
                  file=self._out)  # fmt: skip
        else:
            print(f"{key_id} ({revoked.masked()}) revoked {stop.isoformat() if stop else ''}",
                  file=self._out)  # fmt: skip
        return 0

    def roll(
        self,
        account_id: str,
        *,
        key_id: str | None,
        expire_old_after_hours: float,
        idempotency_key: str,
        reason: str = "",
    ) -> int:
        """Make a new secret key under `idempotency_key`, then set the old one to stop, the
        new key named as its replacement in the record. A run under the key of one that made
        the new key already shows which key that was, and leaves the old key as it is
        (refused): the new key's plaintext was shown only to that run."""
        # Checked before anything is made: a refusal leaves the account as it was.
        _check_hours("--expire-old-after", expire_old_after_hours)
        _check_reason(reason)
        old = self._key_to_roll(account_id, key_id)
        # Run again, the key made would be a second secret key with no end: the run names the
        # one it rolls, so that the next finds the same.
        made = self._create_once(
            account_id,
            accounts_pb2.API_KEY_KIND_SECRET,
            idempotency_key,
            other_flags=(f"--key {old.key.id}",),
            reason=reason,
        )
        if not made.plaintext_key:
            self._show_made_before(account_id, KeyLine(made.api_key))
            raise KeyCommandError(
                f"the old key {old.key.id} ({old.masked()}) was not set to stop: the new key's "
                "plaintext was not shown to this run. Once the account's servers use a key you "
                f"hold, revoke it (remit accounts keys revoke {account_id} {old.key.id})."
            )
        self._show_new(made)
        after = _duration(expire_old_after_hours)
        try:
            expiring = KeyLine(
                self._revoke(
                    account_id, old.key.id, after, reason=reason, replaced_by=made.api_key.id
                ).api_key
            )
        except grpc.RpcError as error:
            raise self._not_set_to_stop(
                error, account_id, made, old, expire_old_after_hours
            ) from None
        stop = expiring.stops_at()
        print(
            f"the old key {old.key.id} ({old.masked()}) keeps working until "
            f"{stop.isoformat() if stop else 'revoked'}",
            file=self._out,
        )
        return 0

    def _not_set_to_stop(
        self,
        error: grpc.RpcError,
        account_id: str,
        made: accounts_pb2.CreateApiKeyResponse,
        old: KeyLine,
        expire_old_after_hours: float,
    ) -> Exception:
        """What a roll raises when its new key was made and shown but the old key could not be
        set to stop: a temporary failure (exit 75) when the core was out of reach, too slow or
        said to retry, so that a script tries the revoke again later, else a refusal (2). Both
        say that the new key exists, that the old one still works, and how to stop it."""
        failure = call_failed(error, "core", self._core_target, KeyCommandError)
        temporary = isinstance(failure, CommandTemporaryFailureError)
        reason = str(failure)
        if temporary and detail_from_rpc_error(cast(grpc.aio.AioRpcError, error)) is not None:
            # The core's own words invite a retry of the request under its idempotency key,
            # which is not what to do here (a roll run again makes no key and stops none).
            reason = f"the core at {self._core_target} could not do it for now"
        # (A failed call is also a grpc.Call, which carries its status code.) No answer in
        # time: the core may have set it to stop all the same.
        unanswered = cast(grpc.Call, error).code() is grpc.StatusCode.DEADLINE_EXCEEDED
        still = "it may still be active" if unanswered else "it is still active"
        line = (
            f"the new key {made.api_key.id} above was made, but the old key {old.key.id} "
            f"({old.masked()}) could not be set to stop ({reason}); {still}"
        )
        # The stop the roll meant to set, which leaves the servers the same time to move over.
        revoke = (
            f"remit accounts keys revoke {account_id} {old.key.id} "
            f"--expire-after {expire_old_after_hours:g}"
        )
        if temporary:
            return CommandTemporaryFailureError(
                f"{line}. Once the core answers, set it to stop as the roll meant to "
                f"({revoke}); remit accounts keys list {account_id} shows it."
            )
        return KeyCommandError(f"{line}. Set it to stop once the refusal is dealt with "
                               f"({revoke}).")  # fmt: skip

    def _key_to_roll(self, account_id: str, key_id: str | None) -> KeyLine:
        secrets = [line for line in self.keys(account_id, include_revoked=False) if line.secret]
        if key_id is not None:
            named = next((line for line in secrets if line.key.id == key_id), None)
            if named is None:
                raise KeyCommandError(f"{account_id} has no working secret key {key_id}")
            return named
        unending = [line for line in secrets if line.stops_at() is None]
        if len(unending) == 1:
            return unending[0]
        if not unending:
            raise KeyCommandError(
                f"{account_id} has no secret key with no end set to roll; make one with "
                "remit accounts keys create"
            )
        raise KeyCommandError(
            f"{account_id} has {len(unending)} secret keys; name the one to roll with --key "
            f"({', '.join(line.key.id for line in unending)})"
        )

    def _create_once(
        self,
        account_id: str,
        kind: accounts_pb2.ApiKeyKind.ValueType,
        idempotency_key: str,
        other_flags: tuple[str, ...] = (),
        *,
        reason: str = "",
    ) -> accounts_pb2.CreateApiKeyResponse:
        """Make a key under `idempotency_key`. A failure that leaves unknown whether it was
        made (exit 75) names the key, and `other_flags`, to run the command again with."""
        request = accounts_pb2.CreateApiKeyRequest(
            account_id=account_id, kind=kind, operator=self._operator, reason=reason
        )
        try:
            reply: accounts_pb2.CreateApiKeyResponse = self._stub.CreateApiKey(
                request, timeout=CALL_TIMEOUT_S, metadata=((IDEMPOTENCY_KEY, idempotency_key),)
            )
        except grpc.RpcError as error:
            failure = call_failed(error, "core", self._core_target, KeyCommandError)
            if isinstance(failure, CommandTemporaryFailureError):
                raise made_perhaps(str(failure), idempotency_key, "the key", other_flags) from None
            raise failure from None
        return reply

    def _revoke(
        self,
        account_id: str,
        key_id: str,
        after: duration_pb2.Duration | None,
        *,
        reason: str,
        replaced_by: str | None = None,
    ) -> accounts_pb2.RevokeApiKeyResponse:
        request = accounts_pb2.RevokeApiKeyRequest(
            account_id=account_id, key_id=key_id, operator=self._operator, reason=reason
        )
        if after is not None:
            request.expire_after.CopyFrom(after)
        if replaced_by is not None:
            request.replaced_by = replaced_by
        reply: accounts_pb2.RevokeApiKeyResponse = self._stub.RevokeApiKey(
            request, timeout=CALL_TIMEOUT_S
        )
        return reply

    def audit(self, account_id: str, *, limit: int, starting_after: str | None) -> int:
        """One page of the account's key events, newest first; the last line says how to ask
        for the next when there is one."""
        if not 1 <= limit <= MAX_AUDIT_LIMIT:
            raise KeyCommandError(f"--limit must be between 1 and {MAX_AUDIT_LIMIT}, got {limit}")
        request = accounts_pb2.ListApiKeyEventsRequest(account_id=account_id, limit=limit)
        if starting_after is not None:
            request.starting_after = starting_after
        page = self._stub.ListApiKeyEvents(request, timeout=CALL_TIMEOUT_S)
        if not page.data:
            print(f"{account_id} has no key events"
                  f"{' older than ' + starting_after if starting_after else ''}",
                  file=self._out)  # fmt: skip
        for event in page.data:
            print(audit_line(event), file=self._out)
        if page.has_more:
            print(
                f"more: remit accounts keys audit {account_id} --limit {limit} "
                f"--starting-after {page.data[-1].id}",
                file=self._out,
            )
        return 0

    def _show_new(self, made: accounts_pb2.CreateApiKeyResponse) -> None:
        kind = "secret" if made.api_key.kind == accounts_pb2.API_KEY_KIND_SECRET else "publishable"
        print(f"new {kind} key  {made.plaintext_key}", file=self._out)
        print(f"key id           {made.api_key.id}", file=self._out)
        if kind == "secret":
            print("this is the only time it is shown: store it now", file=self._out, flush=True)

    def _show_made_before(self, account_id: str, made: KeyLine) -> None:
        print(
            f"key {made.key.id} ({made.masked()}, {made.status(datetime.now(UTC))}) was made by "
            "an earlier run under this idempotency key: its plaintext was shown only to that "
            "run and is not kept. If you do not have it, revoke it (remit accounts keys revoke "
            f"{account_id} {made.key.id}) and make another.",
            file=self._out,
        )


def _when(stamp: timestamp_pb2.Timestamp) -> str:
    return stamp.ToDatetime(tzinfo=UTC).isoformat()


def _what(event: accounts_pb2.ApiKeyEvent) -> str:
    """What the event did, in a few words with its times."""
    action = event.action
    stop = _when(event.stops_at) if event.HasField("stops_at") else "never"
    before = _when(event.stops_at_before) if event.HasField("stops_at_before") else None
    if action == accounts_pb2.API_KEY_EVENT_ACTION_CREATED:
        kind = "secret" if event.kind == accounts_pb2.API_KEY_KIND_SECRET else "publishable"
        return f"created ({kind}, {'live' if event.livemode else 'test'} mode)"
    if action == accounts_pb2.API_KEY_EVENT_ACTION_REVOKED:
        return f"revoked at {stop}"
    if action == accounts_pb2.API_KEY_EVENT_ACTION_REVOCATION_SCHEDULED:
        return f"revocation scheduled for {stop}"
    if action == accounts_pb2.API_KEY_EVENT_ACTION_REVOCATION_BROUGHT_FORWARD:
        return f"revocation brought forward from {before} to {stop}"
    if action == accounts_pb2.API_KEY_EVENT_ACTION_ROLLED:
        kept = " (set before)" if before == stop else ""
        return f"rolled to {event.replaced_by}, works until {stop}{kept}"
    return f"action {action}"  # one a newer core records


def audit_line(event: accounts_pb2.ApiKeyEvent) -> str:
    """One event as `keys audit` prints it: when, which key (masked), what, who and why. The
    operator and the reason, which the caller names, are quoted (`quoted_told`): a line break
    in either cannot pass for another event."""
    who = event.role + (f" ({quoted_told(event.operator)})" if event.operator else "")
    line = (
        f"{_when(event.created)}  {event.id}  {event.key_id} ({event.masked_key})  "
        f"{_what(event)}  by {who}"
    )
    if event.reason:
        line += f"  reason {quoted_told(event.reason)}"
    return line


def _check_reason(reason: str) -> None:
    """Checked before anything is made or changed, as the core would refuse it after."""
    if len(reason) > MAX_REASON_LENGTH:
        raise KeyCommandError(
            f"--reason must be at most {MAX_REASON_LENGTH} characters, got {len(reason)}"
        )
    if (char := unprintable_character(reason)) is not None:
        raise KeyCommandError(
            f"--reason must not contain control characters or line breaks (found {char})"
        )


def _check_hours(flag: str, hours: float) -> None:
    """Checked before anything is made or changed: a refusal leaves the account as it was."""
    if not 0 <= hours <= MAX_EXPIRE_OLD_AFTER_HOURS:
        raise KeyCommandError(
            f"{flag} must be between 0 and {MAX_EXPIRE_OLD_AFTER_HOURS:.0f} hours, got {hours:g}"
        )


def _duration(hours: float) -> duration_pb2.Duration:
    after = duration_pb2.Duration()
    after.FromNanoseconds(round(hours * 3600 * 1e9))
    return after


@contextmanager
def key_commands(config: PlatformConfig, out: TextIO) -> Iterator[KeyCommands]:
    with internal_sync_channel(config.core.target, InternalAccess.of(config)) as channel:
        yield KeyCommands(
            accounts_pb2_grpc.AccountsServiceStub(channel),
            out,
            config.core.target,
            operator=shell_operator(),
        )


def run_key_command(config: PlatformConfig, args: argparse.Namespace, out: TextIO) -> int:
    """Run `args.keys_command` (list, create, revoke, roll or audit). A refusal, the core's
    included, is raised as `CommandRefusedError`, a failure that may pass as
    `CommandTemporaryFailureError` (`remit.command_exits`)."""
    account: str = args.account
    # Sent by create and roll, named when the outcome is not known
    # (`remit.accounts.command_keys`).
    idempotency_key = command_idempotency_key(getattr(args, "idempotency_key", None))
    try:
        with key_commands(config, out) as keys:
            if args.keys_command == "list":
                return keys.list(account, include_revoked=args.all)
            if args.keys_command == "audit":
                return keys.audit(account, limit=args.limit, starting_after=args.starting_after)
            reason: str = args.reason or ""
            if args.keys_command == "create":
                return keys.create(
                    account,
                    publishable=args.publishable,
                    idempotency_key=idempotency_key,
                    reason=reason,
                )
            if args.keys_command == "revoke":
                return keys.revoke(
                    account,
                    args.key,
                    force=args.force,
                    expire_after_hours=args.expire_after,
                    reason=reason,
                )
            return keys.roll(
                account,
                key_id=args.key,
                expire_old_after_hours=args.expire_old_after,
                idempotency_key=idempotency_key,
                reason=reason,
            )
    except grpc.RpcError as error:
        raise call_failed(error, "core", config.core.target, KeyCommandError) from None
