"""CreateAccount and CreateApiKey under an idempotency key (the `idempotency-key` metadata, as
the payments RPCs take it): a call retried after its answer was lost makes nothing a second
time.

Each such call is one transaction, so unlike a payment it has no recovery point to resume
from: its key is claimed in the transaction that makes the account or key, with what it made.
A retry finds the claim and is answered with what the first call made, as it is now (a key
revoked since shows as revoked), marked `idempotent-replayed: true`. Not with the plaintext of
a key: remit keeps keys only as digests (`remit.accounts.keys`), and keeping a copy to replay
would store every new key in a form that gives it back. The replay says which key was made
(its id and last four); a caller that never got its plaintext revokes it and makes another, so
no working key is left that nobody holds, and none is made twice.

A key is the caller's for 24 hours, as on the REST API: reused for another call (another
endpoint, or other parameters) within that time, it is refused as an `idempotency_error`;
after, it starts afresh. A call refused (bad settings, an unknown account) claims nothing, so
the call put right can be sent again under the same key. The worker deletes the calls once
they are older than the payments' keys are kept (`reap`): every run of `remit accounts create`
or `remit accounts keys create|roll` sends a fresh key, so the table would only grow.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.accounts.tables import admin_idempotency_keys
from remit.core.errors import ErrorKind, RemitError, echoed

KEY_LIFETIME: Final = timedelta(hours=24)
# How long a call is kept: as long as a payment's key (`remit.payments.idempotency`), past its
# lifetime, so that the call that made a key can still be told for a while.
KEY_RETENTION: Final = timedelta(hours=72)
CREATE_ACCOUNT: Final = "CreateAccount"
CREATE_API_KEY: Final = "CreateApiKey"


@dataclass(frozen=True)
class MadeBefore:
    """What the call that first claimed a key made."""

    account_id: str
    api_key_ids: tuple[str, ...]


def request_digest(endpoint: str, parameters: dict[str, object]) -> bytes:
    """A digest of a call's parameters, as the service checked them, so that the same call
    made through the CLI or over gRPC, with defaults spelled out or not, digests alike."""
    canonical = json.dumps(parameters, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{endpoint}\x00{canonical}".encode()).digest()


def _reused(key: str, rule: str) -> RemitError:
    """`key` reused for another call, in the words the REST API uses (`rule` says which)."""
    return RemitError(
        message=(
            f"Keys for idempotent requests can only be used {rule}. Try using a key other than "
            f"'{echoed(key)}' if you meant to execute a different request."
        ),
        kind=ErrorKind.ALREADY_EXISTS,
        error_type="idempotency_error",
    )


async def claim(
    db: AsyncConnection,
    key: str,
    *,
    endpoint: str,
    digest: bytes,
    account_id: str,
    api_key_ids: tuple[str, ...],
    now: datetime,
) -> MadeBefore | None:
    """Claim `key` for the call about to make `account_id` and `api_key_ids`, in its
    transaction; None when it is this call's to make. Otherwise what the first call under the
    key made, once it has committed (a call racing this one under the key holds it until then),
    or an `idempotency_error` when that call was another."""
    # A claim older than a key's lifetime is let go: the key starts afresh.
    await db.execute(
        delete(admin_idempotency_keys).where(
            admin_idempotency_keys.c.idempotency_key == key,
            admin_idempotency_keys.c.created_at <= now - KEY_LIFETIME,
        )
    )
    claimed = await db.execute(
        insert(admin_idempotency_keys)
        .values(
            idempotency_key=key,
            endpoint=endpoint,
            request_digest=digest,
            account_id=account_id,
            api_key_ids=list(api_key_ids),
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[admin_idempotency_keys.c.idempotency_key])
        .returning(admin_idempotency_keys.c.idempotency_key)
    )
    if claimed.first() is not None:
        return None
    row = (
        await db.execute(
            select(admin_idempotency_keys).where(admin_idempotency_keys.c.idempotency_key == key)
        )
    ).one()
    first = row._mapping
    if first["endpoint"] != endpoint:
        raise _reused(
            key,
            "for the same endpoint they were first used for "
            f"('{endpoint}' vs '{first['endpoint']}')",
        )
    if first["request_digest"] != digest:
        raise _reused(key, "with the same parameters they were first used with")
    return MadeBefore(account_id=first["account_id"], api_key_ids=tuple(first["api_key_ids"]))


async def reap(db: AsyncConnection, *, now: datetime) -> int:
    """Delete the calls claimed longer than `KEY_RETENTION` before `now`; how many."""
    result = await db.execute(
        delete(admin_idempotency_keys).where(
            admin_idempotency_keys.c.created_at < now - KEY_RETENTION
        )
    )
    return int(result.rowcount)
