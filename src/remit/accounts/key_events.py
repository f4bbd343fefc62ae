"""The audit record of an account's API keys: every key made, and every stop set on one.

A key's row says only how it is now: bringing a scheduled stop forward overwrites it. So each
change also appends an event (`api_key_events`), in the transaction that makes the change, so
that a change and its event are never one without the other, and a change refused writes
none. The table is append-only (core migration 0086 refuses UPDATE and DELETE of its rows).

An event says who: the internal role the gRPC call proved (`remit.grpcutil.caller_role`), or
`unchecked` when the core checks no credentials (REMIT_INTERNAL_AUTH=off), or `database` for
what wrote the core's database itself (`remit accounts create`, the first start of `remit
serve`); and the operator the caller names (the CLI sends its OS user and host), which the
core records as told. Never the key, nor its digest: the key's masked form (`sk_test_...` and
its last four) is what tells it apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Final

from remit.accounts.domain import ApiKey, KeyKind

# What made a change that came through no gRPC call, or through one no credential was checked on.
DATABASE_ROLE: Final = "database"
UNCHECKED_ROLE: Final = "unchecked"

# The longest reason recorded (the RPCs declare the same `max_length`; the operator's is
# `remit.core.shell_operator.MAX_OPERATOR_LENGTH`).
MAX_REASON_LENGTH: Final = 500
# `remit accounts keys audit`: events a page unless --limit says otherwise, and the most (as
# ListApiKeyEvents answers at most).
DEFAULT_AUDIT_LIMIT: Final = 20
MAX_AUDIT_LIMIT: Final = 100


class KeyEventAction(Enum):
    CREATED = "created"
    # A key with no end set to stop now (or before now: never), or later.
    REVOKED = "revoked"
    REVOCATION_SCHEDULED = "revocation_scheduled"
    # A key already set to stop, set to stop sooner (now, or at a later time than now).
    REVOCATION_BROUGHT_FORWARD = "revocation_brought_forward"
    # A key replaced by another (`replaced_by`), set to stop after a grace period; recorded
    # with the stop in force after it, which a stop set sooner before leaves as it was.
    ROLLED = "rolled"


@dataclass(frozen=True)
class KeyActor:
    """Who changes a key, and why (`reason` when the caller gave one)."""

    role: str
    operator: str = ""
    reason: str = ""


# In-process callers (`remit serve`, tests) write the core's database themselves.
DATABASE_ACTOR: Final = KeyActor(role=DATABASE_ROLE)


@dataclass(frozen=True)
class KeyEvent:
    id: str
    created_at: datetime
    account_id: str
    key_id: str
    action: KeyEventAction
    kind: KeyKind
    livemode: bool
    # `sk_test_...` and the key's last four: never the key or its digest.
    masked_key: str
    role: str
    operator: str
    reason: str
    # The stop in force after the change, and the one before (None: no end set).
    stops_at: datetime | None = None
    stops_at_before: datetime | None = None
    # ROLLED: the key that replaces it.
    replaced_by: str | None = None


def masked(key: ApiKey) -> str:
    """The key as the API and the commands show it: its prefix and last four."""
    kind = "sk" if key.kind is KeyKind.SECRET else "pk"
    mode = "live" if key.livemode else "test"
    return f"{kind}_{mode}_...{key.last4}"


def stop_action(
    before: datetime | None, after: datetime | None, *, now: datetime, rolled: bool
) -> KeyEventAction | None:
    """The event of a stop set from `before` to `after` at `now`; None when nothing changed
    and the call was no roll (a roll names the key that replaces this one either way)."""
    if rolled:
        return KeyEventAction.ROLLED
    if before == after:
        return None
    if before is not None:
        return KeyEventAction.REVOCATION_BROUGHT_FORWARD
    if after is not None and after > now:
        return KeyEventAction.REVOCATION_SCHEDULED
    return KeyEventAction.REVOKED
