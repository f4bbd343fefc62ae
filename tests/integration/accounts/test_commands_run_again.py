"""`remit accounts create` and `remit accounts keys create|roll` send an idempotency key: run
again under the key of a run whose outcome was not known, they make nothing twice and say what
the first run made. The real `remit` runs as a subprocess, against a real database and, for the
keys, the accounts service served in this process."""

import json
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.domain import ApiKey, KeyKind
from remit.accounts.grpc import accounts_registration
from remit.accounts.key_events import DATABASE_ACTOR, KeyActor
from remit.accounts.service import AccountsService
from remit.grpcutil.errors import database_unavailable_error
from tests.integration.test_admin_command_exits import serving
from tests.support.commands import remit
from tests.support.postgres import WorkerDatabases

pytestmark = pytest.mark.anyio


async def test_keys_create_run_again_under_its_key_makes_no_second_key(
    core_engine: AsyncEngine, tmp_path: Path
) -> None:
    service = AccountsService(core_engine)
    account = (await service.create_account()).account.id
    async with serving(accounts_registration(service).add_to_server) as port:
        first = await remit("accounts", "keys", "create", account, "--idempotency-key", "k-1",
                            tmp_path=tmp_path, REMIT_CORE_PORT=port)  # fmt: skip
        again = await remit("accounts", "keys", "create", account, "--idempotency-key", "k-1",
                            tmp_path=tmp_path, REMIT_CORE_PORT=port)  # fmt: skip
        other = await remit("accounts", "keys", "create", account,
                            tmp_path=tmp_path, REMIT_CORE_PORT=port)  # fmt: skip
    assert (first.returncode, again.returncode, other.returncode) == (0, 0, 0)
    key_id = next(line.split()[-1] for line in first.stdout.splitlines() if "key id" in line)
    assert "new secret key  sk_test_" in first.stdout
    assert "sk_test_" not in again.stdout.replace("sk_test_...", "")
    assert f"key {key_id} (sk_test_..." in again.stdout
    assert "was made by an earlier run under this idempotency key" in again.stdout
    assert f"remit accounts keys revoke {account} {key_id}" in again.stdout
    # Each run without a key of its own sends a fresh one: it makes a key.
    assert "new secret key  sk_test_" in other.stdout
    assert len(await service.list_keys(account)) == 4


async def test_keys_create_that_got_no_answer_names_the_key_to_run_it_again_with(
    tmp_path: Path,
) -> None:
    # Nothing listens on the core's port: the command cannot know that nothing was made.
    ran = await remit("accounts", "keys", "create", "acct_x", "--idempotency-key", "k-lost",
                      tmp_path=tmp_path)  # fmt: skip
    assert ran.returncode == 75
    line = ran.failure_line()
    assert line.startswith("remit accounts keys create: the core is not reachable at ")
    assert line.endswith(
        "; the key may have been made all the same: run the command again with "
        "--idempotency-key k-lost, so that it is not made twice"
    )


async def test_keys_create_without_a_key_names_the_one_it_made_up(tmp_path: Path) -> None:
    ran = await remit("accounts", "keys", "create", "acct_x", tmp_path=tmp_path)
    assert ran.returncode == 75
    assert "run the command again with --idempotency-key remit-command-" in ran.failure_line()


class AnswerLost(AccountsService):
    """Makes the key, then fails as if its answer were lost with the database gone."""

    async def create_key_once(
        self,
        idempotency_key: str,
        account_id: str,
        kind: KeyKind,
        actor: KeyActor = DATABASE_ACTOR,
    ) -> tuple[ApiKey, str | None]:
        await super().create_key_once(idempotency_key, account_id, kind, actor)
        raise database_unavailable_error()


async def test_keys_roll_run_again_under_its_key_makes_no_second_key_and_stops_no_key(
    core_engine: AsyncEngine, tmp_path: Path
) -> None:
    """Its first run made the new key but got no answer: nobody was shown the new key, so the
    run again names it and leaves the old one working."""
    service = AccountsService(core_engine)
    account = (await service.create_account()).account.id
    (old,) = [key for key in await service.list_keys(account) if key.kind is KeyKind.SECRET]
    async with serving(accounts_registration(AnswerLost(core_engine)).add_to_server) as port:
        lost = await remit("accounts", "keys", "roll", account, "--idempotency-key", "r-1",
                           tmp_path=tmp_path, REMIT_CORE_PORT=port)  # fmt: skip
    assert lost.returncode == 75
    assert lost.failure_line().endswith(
        "; the key may have been made all the same: run the command again with "
        f"--key {old.id} --idempotency-key r-1, so that it is not made twice"
    )
    secrets = [key for key in await service.list_keys(account) if key.kind is KeyKind.SECRET]
    (made,) = [key for key in secrets if key.id != old.id]

    async with serving(accounts_registration(service).add_to_server) as port:
        again = await remit("accounts", "keys", "roll", account, "--key", old.id,
                            "--idempotency-key", "r-1", tmp_path=tmp_path,
                            REMIT_CORE_PORT=port)  # fmt: skip
    assert again.returncode == 2
    assert "sk_test_" not in again.stdout.replace("sk_test_...", "")
    assert f"key {made.id} (sk_test_..." in again.stdout
    assert "was made by an earlier run under this idempotency key" in again.stdout
    assert again.failure_line() == (
        f"remit accounts keys roll: the old key {old.id} (sk_test_...{old.last4}) was not set "
        "to stop: the new key's plaintext was not shown to this run. Once the account's "
        "servers use a key you hold, revoke it (remit accounts keys revoke "
        f"{account} {old.id})."
    )
    keys = {key.id: key for key in await service.list_keys(account)}
    assert len(keys) == 3  # the account's two, and the one the first run made
    assert keys[old.id].revoked_at is None


async def test_accounts_create_run_again_under_its_key_makes_no_second_account(
    core_engine: AsyncEngine, databases: WorkerDatabases, tmp_path: Path
) -> None:
    urls = {
        "DATABASE_URL": databases.core_url,
        "VAULT_DATABASE_URL": databases.vault_url,
        "ACQUIRER_DATABASE_URL": databases.acquirer_url,
    }
    first = await remit("accounts", "create", "--json", "--idempotency-key", "a-1",
                        tmp_path=tmp_path, **urls)  # fmt: skip
    again = await remit("accounts", "create", "--json", "--idempotency-key", "a-1",
                        tmp_path=tmp_path, **urls)  # fmt: skip
    text_again = await remit("accounts", "create", "--idempotency-key", "a-1",
                             tmp_path=tmp_path, **urls)  # fmt: skip
    assert (first.returncode, again.returncode, text_again.returncode) == (0, 0, 0), again.stderr
    made = json.loads(first.stdout.splitlines()[-1])
    replayed = json.loads(again.stdout.splitlines()[-1])
    assert set(made) == {"id", "secret_key", "publishable_key"}
    assert made["secret_key"].startswith("sk_test_")
    keys = await AccountsService(core_engine).list_keys(made["id"])
    by_kind = {key.kind: key.id for key in keys}
    assert replayed == {
        "id": made["id"],
        "secret_key": None,
        "publishable_key": None,
        "secret_key_id": by_kind[KeyKind.SECRET],
        "publishable_key_id": by_kind[KeyKind.PUBLISHABLE],
        "replayed": True,
    }
    assert f"account          {made['id']}" in text_again.stdout
    assert "made by an earlier run under this idempotency key" in text_again.stdout
    assert "sk_test_" not in text_again.stdout
    assert len(keys) == 2
