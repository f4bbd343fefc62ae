"""`remit accounts keys audit`, and the record the other key commands leave: each names the
admin role the CLI's credential proves, the operator running it (USER@HOST, quoted) and its
--reason; the listing pages newest first and never shows a key."""

import re
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.domain import KeyKind
from remit.accounts.grpc import accounts_registration
from remit.accounts.service import AccountsService
from remit.core.shell_operator import shell_operator
from tests.integration.test_admin_command_exits import serving
from tests.support.commands import remit

pytestmark = pytest.mark.anyio

_NEW_KEY = re.compile(r"new (?:secret|publishable) key  (\S+)")


async def test_key_commands_are_recorded_and_audit_lists_them_newest_first(
    core_engine: AsyncEngine, tmp_path: Path
) -> None:
    accounts = AccountsService(core_engine)
    made = await accounts.create_account()
    account, old = made.account.id, made.secret_api_key.id
    operator = shell_operator()
    async with serving(accounts_registration(accounts).add_to_server) as port:

        async def run(*args: str) -> str:
            ran = await remit("accounts", "keys", *args, tmp_path=tmp_path, REMIT_CORE_PORT=port)
            assert ran.returncode == 0, ran.stderr
            return ran.stdout

        created = await run("create", account, "--publishable", "--reason", 'for the "web" app')
        rolled = await run("roll", account, "--expire-old-after", "2", "--reason", "leaked")
        (publishable,) = _NEW_KEY.findall(created)
        (secret,) = _NEW_KEY.findall(rolled)
        keys = {key.id: key for key in await accounts.list_keys(account)}
        (new,) = [k for k in keys.values() if k.kind is KeyKind.SECRET and k.id != old]
        (pk,) = [k for k in keys.values() if k.last4 == publishable[-4:] and k.id != old]
        await run("revoke", account, pk.id, "--reason", "unused")
        listed = await run("audit", account)
        first = await run("audit", account, "--limit", "2")
        nearly = first.splitlines()[-1].removeprefix("more: remit accounts keys audit ")
        rest = await run("audit", *nearly.split())
        unknown = await remit("accounts", "keys", "audit", "acct_nope", tmp_path=tmp_path,
                              REMIT_CORE_PORT=port)  # fmt: skip
        too_many = await remit("accounts", "keys", "audit", account, "--limit", "101",
                               tmp_path=tmp_path, REMIT_CORE_PORT=port)  # fmt: skip

    lines = listed.splitlines()
    # Newest first: the revoke, the roll (its old key stopping, then its new key made), the
    # publishable key, then the account's first two keys (made by no command: `database`).
    assert len(lines) == 6, listed
    assert f"{pk.id} (pk_test_...{pk.last4})  revoked at " in lines[0]
    assert lines[0].endswith(f'by admin ("{operator}")  reason "unused"')
    stop = keys[old].revoked_at
    assert stop is not None
    assert (
        f"{old} (sk_test_...{made.secret_key[-4:]})  rolled to {new.id}, works until "
        f'{stop.isoformat()}  by admin ("{operator}")  reason "leaked"'
    ) in lines[1]
    assert f"{new.id} (sk_test_...{new.last4})  created (secret, test mode)" in lines[2]
    assert lines[3].endswith(f'by admin ("{operator}")  reason "for the \\"web\\" app"')
    assert all(line.endswith("by database") for line in lines[4:])
    # A page of two, and the command for the next, which picks up where it left off.
    assert first.splitlines()[:2] == lines[:2]
    assert nearly == f"{account} --limit 2 --starting-after {lines[1].split()[1]}"
    assert rest.splitlines()[:2] == lines[2:4]
    assert unknown.returncode == 2
    assert "No such" in unknown.failure_line()
    assert too_many.returncode == 2
    assert "--limit must be between 1 and 100" in too_many.failure_line()
    # Neither the listing nor the record holds a key made, whole or its random part.
    async with core_engine.connect() as db:
        stored = "\n".join(
            (await db.execute(text("SELECT e::text FROM api_key_events AS e"))).scalars()
        )
    for key in (publishable, secret, made.secret_key, made.publishable_key):
        for shown in (listed, first, rest, stored):
            assert key not in shown
            assert key.split("_")[2] not in shown


@pytest.mark.parametrize(
    ("reason", "refusal"),
    [
        ("x" * 501, "--reason must be at most 500 characters, got 501"),
        (
            "leaked\n2026-01-02T03:04:05+00:00  kevt_forged",
            "--reason must not contain control characters or line breaks (found U+000A)",
        ),
    ],
    ids=["too long", "line break"],
)
async def test_a_reason_refused_is_refused_before_anything_is_made(
    core_engine: AsyncEngine, tmp_path: Path, reason: str, refusal: str
) -> None:
    accounts = AccountsService(core_engine)
    account = (await accounts.create_account()).account.id
    async with serving(accounts_registration(accounts).add_to_server) as port:
        ran = await remit("accounts", "keys", "roll", account, "--reason", reason,
                          tmp_path=tmp_path, REMIT_CORE_PORT=port)  # fmt: skip
    assert ran.returncode == 2
    assert refusal in ran.failure_line()
    assert len(await accounts.list_keys(account)) == 2
