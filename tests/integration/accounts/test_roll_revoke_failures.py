"""`remit accounts keys roll` that made and showed its new key but could not set the old one to
stop: a failure that may pass (the core's database out of reach) exits 75, for a script to try
the revoke again later; a refusal exits 2. Both say the new key was made and the old one still
works, and how to stop it."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.domain import ApiKey, KeyKind
from remit.accounts.grpc import accounts_registration
from remit.accounts.key_events import DATABASE_ACTOR, KeyActor
from remit.accounts.service import AccountsService
from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.errors import database_unavailable_error
from tests.integration.test_admin_command_exits import serving
from tests.support.commands import remit

pytestmark = pytest.mark.anyio


class RevokeOutOfReach(AccountsService):
    """Makes keys; revokes none, its database gone (the answer a core gives then)."""

    async def revoke_key(
        self,
        account_id: str,
        key_id: str,
        *,
        expire_after: timedelta = timedelta(0),
        replaced_by: str | None = None,
        actor: KeyActor = DATABASE_ACTOR,
    ) -> ApiKey:
        raise database_unavailable_error()


class RevokeRefused(AccountsService):
    async def revoke_key(
        self,
        account_id: str,
        key_id: str,
        *,
        expire_after: timedelta = timedelta(0),
        replaced_by: str | None = None,
        actor: KeyActor = DATABASE_ACTOR,
    ) -> ApiKey:
        raise RemitError("That key cannot be revoked.", kind=ErrorKind.FAILED_PRECONDITION)


@pytest.mark.parametrize(
    ("service", "code", "why"),
    [(RevokeOutOfReach, 75, "the core at 127.0.0.1:{port} could not do it for now"),
     (RevokeRefused, 2, "That key cannot be revoked.")],
)  # fmt: skip
async def test_roll_whose_revoke_fails_says_the_new_key_was_made_and_the_old_one_still_works(
    core_engine: AsyncEngine,
    tmp_path: Path,
    service: type[AccountsService],
    code: int,
    why: str,
) -> None:
    accounts = AccountsService(core_engine)
    account = (await accounts.create_account()).account.id
    (old,) = [key for key in await accounts.list_keys(account) if key.kind is KeyKind.SECRET]
    async with serving(accounts_registration(service(core_engine)).add_to_server) as port:
        ran = await remit("accounts", "keys", "roll", account, tmp_path=tmp_path,
                          REMIT_CORE_PORT=port)  # fmt: skip
    assert ran.returncode == code, ran.stderr
    why = why.format(port=port)
    secrets = {key.id: key for key in await accounts.list_keys(account)
               if key.kind is KeyKind.SECRET}  # fmt: skip
    (made,) = [key_id for key_id in secrets if key_id != old.id]
    assert secrets[old.id].revoked_at is None
    # The new key was shown, the only time it is.
    assert "new secret key  sk_test_" in ran.stdout
    assert f"key id           {made}" in ran.stdout
    line = ran.failure_line()
    said = (
        f"remit accounts keys roll: the new key {made} above was made, but the old key {old.id} "
        f"(sk_test_...{old.last4}) could not be set to stop ({why}); it is still active. "
    )
    assert line.startswith(said), line
    assert f"(remit accounts keys revoke {account} {old.id} --expire-after 24)" in line


async def test_revoke_with_expire_after_sets_the_stop_a_failed_roll_meant(
    core_engine: AsyncEngine, tmp_path: Path
) -> None:
    """The command a failed roll names: the key keeps working for the hours given, then stops,
    as the roll would have left it; out of bounds, nothing changes."""
    accounts = AccountsService(core_engine)
    account = (await accounts.create_account()).account.id
    (old,) = [key for key in await accounts.list_keys(account) if key.kind is KeyKind.SECRET]
    await accounts.create_key(account, KeyKind.SECRET)
    async with serving(accounts_registration(accounts).add_to_server) as port:
        refused = await remit("accounts", "keys", "revoke", account, old.id,
                              "--expire-after", "169", tmp_path=tmp_path,
                              REMIT_CORE_PORT=port)  # fmt: skip
        assert refused.returncode == 2
        assert refused.failure_line() == (
            "remit accounts keys revoke: --expire-after must be between 0 and 168 hours, got 169"
        )
        ran = await remit("accounts", "keys", "revoke", account, old.id,
                          "--expire-after", "24", tmp_path=tmp_path,
                          REMIT_CORE_PORT=port)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert f"{old.id} (sk_test_...{old.last4}) keeps working until " in ran.stdout
    (after,) = [key for key in await accounts.list_keys(account) if key.id == old.id]
    assert after.revoked_at is not None
    left = after.revoked_at - datetime.now(UTC)
    assert timedelta(hours=23, minutes=58) < left <= timedelta(hours=24)
