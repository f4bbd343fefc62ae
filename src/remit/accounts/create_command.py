"""`remit accounts create`: a new account and its first keys, printed once.

It runs against the core's database directly, so that it works whether or not the platform is
running (a core database not at this version's schema head is refused, never migrated: that is
`remit migrate`'s, run when the operator means it), and goes through `AccountsService` as
CreateAccount does, the settings checked the same way. It sends an idempotency key
(`remit.accounts.command_keys`): run again under the key of a run whose outcome was not known,
it prints the account that run made, and the ids of its keys, which it can no longer show.
"""

import asyncio
import json
from typing import TextIO

from remit.accounts.command_keys import made_perhaps
from remit.accounts.domain import AccountMadeBefore, NewAccount
from remit.accounts.key_events import DATABASE_ROLE, KeyActor
from remit.accounts.service import AccountsService
from remit.command_exits import summary
from remit.config import PlatformConfig
from remit.core.shell_operator import shell_operator
from remit.storage.database_clock import command_clock
from remit.storage.driver_errors import database_unavailable


def create_account_command(
    config: PlatformConfig,
    *,
    raw_card_access: bool,
    currency: str,
    idempotency_key: str,
    as_json: bool,
    out: TextIO,
) -> int:
    from remit.databases import require_at_head, resolve_databases
    from remit.storage.engine import dispose, make_engine
    from remit.storage.reachability import DatabasesUnavailableError, core_database, failure_of

    resolved = resolve_databases(config, needed=("core",))
    try:
        database = core_database(resolved.config)
        require_at_head([database], "accounts create")

        async def create() -> NewAccount | AccountMadeBefore:
            engine = make_engine(database.url, pool_size=1)
            try:
                # The key's claim is compared with the time of a run again, perhaps on another
                # host, and the worker deletes it by the database's clock: stamped by that too.
                try:
                    clock = await command_clock(engine)
                except Exception as error:
                    if not database_unavailable(error):
                        raise
                    # Only the clock was asked for: nothing was made, and the command says so
                    # as it does of a database out of reach from the start.
                    raise DatabasesUnavailableError([failure_of(database, error)]) from error
                # Its keys' CREATED events name the operator, as `accounts keys` commands do.
                actor = KeyActor(role=DATABASE_ROLE, operator=shell_operator())
                return await AccountsService(engine, clock).create_account_once(
                    idempotency_key,
                    actor,
                    default_currency=currency,
                    raw_card_access=raw_card_access,
                )
            finally:
                await dispose(engine)

        try:
            made = asyncio.run(create())
        except DatabasesUnavailableError:
            raise
        except Exception as error:
            if not database_unavailable(error):
                raise
            # Gone while it committed, perhaps after: the account may be there.
            lost = f"the database became unavailable ({summary(error)})"
            raise made_perhaps(lost, idempotency_key, "the account") from error
    finally:
        resolved.stop_embedded()
    if isinstance(made, NewAccount):
        _print_new(made, as_json=as_json, out=out)
    else:
        _print_made_before(made, as_json=as_json, out=out)
    return 0


def _print_new(made: NewAccount, *, as_json: bool, out: TextIO) -> None:
    if as_json:
        shown = {
            "id": made.account.id,
            "secret_key": made.secret_key,
            "publishable_key": made.publishable_key,
        }
        print(json.dumps(shown), file=out)
        return
    print(f"account          {made.account.id}", file=out)
    print(f"secret key       {made.secret_key}", file=out)
    print(f"publishable key  {made.publishable_key}", file=out)


def _print_made_before(made: AccountMadeBefore, *, as_json: bool, out: TextIO) -> None:
    account = made.account.id
    secret, publishable = made.secret_api_key.id, made.publishable_api_key.id
    if as_json:
        shown = {
            "id": account,
            "secret_key": None,
            "publishable_key": None,
            "secret_key_id": secret,
            "publishable_key_id": publishable,
            "replayed": True,
        }
        print(json.dumps(shown), file=out)
        return
    print(f"account          {account}", file=out)
    print(
        f"made by an earlier run under this idempotency key, with the keys {secret} (secret) "
        f"and {publishable} (publishable): they were shown only to that run and are not kept. "
        f"If you do not have them, make others (remit accounts keys create {account}, with "
        f"--publishable for the second) and revoke these (remit accounts keys revoke {account} "
        "KEY --force).",
        file=out,
    )
