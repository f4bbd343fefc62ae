"""Account use cases. Each method is one transaction."""

from dataclasses import replace
from datetime import datetime, timedelta
from typing import TypedDict, Unpack

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts import admin_requests
from remit.accounts.domain import (
    API_KEY_EXPIRED,
    MAX_KEY_EXPIRY,
    MAX_LISTED_KEY_DIGESTS,
    Account,
    AccountMadeBefore,
    ApiKey,
    KeyKind,
    NewAccount,
    Pricing,
    Principal,
)
from remit.accounts.key_events import (
    DATABASE_ACTOR,
    MAX_REASON_LENGTH,
    KeyActor,
    KeyEvent,
    KeyEventAction,
    masked,
    stop_action,
)
from remit.accounts.keys import digest_key, generate_key, looks_like_key
from remit.accounts.repository import REVOKED, SqlAccountRepository, account_values
from remit.accounts.settings import checked_settings
from remit.core.clock import Clock, SystemClock
from remit.core.errors import ErrorKind, RemitError, invalid, not_found
from remit.core.ids import new_id
from remit.core.shell_operator import MAX_OPERATOR_LENGTH
from remit.core.told_text import unprintable_character


class AccountsError(RemitError):
    """Root of the errors the accounts service raises."""


def _unauthenticated(message: str) -> AccountsError:
    return AccountsError(message=message, kind=ErrorKind.UNAUTHENTICATED)


class AccountOptions(TypedDict, total=False):
    """A new account's settings; those left out take the platform's defaults."""

    default_currency: str  # "usd"
    raw_card_access: bool  # False
    api_version: str | None  # None: its first request pins it
    pricing: Pricing | None  # Pricing(): 2.9% + 30
    available_delay_days: int  # 2
    automatic_payouts: bool  # False
    radar_enabled: bool  # True


def _checked_actor(actor: KeyActor) -> KeyActor:
    """Refused before anything is written: a record keeps what it is told whole or not at all."""
    if len(actor.operator) > MAX_OPERATOR_LENGTH:
        raise invalid(f"operator must be at most {MAX_OPERATOR_LENGTH} characters.", "operator")
    if len(actor.reason) > MAX_REASON_LENGTH:
        raise invalid(f"reason must be at most {MAX_REASON_LENGTH} characters.", "reason")
    for field, value in (("operator", actor.operator), ("reason", actor.reason)):
        if (char := unprintable_character(value)) is not None:
            raise invalid(
                f"{field} must not contain control characters or line breaks (found {char}).",
                field,
            )
    return actor


def _key_event(
    key: ApiKey,
    action: KeyEventAction,
    actor: KeyActor,
    at: datetime,
    *,
    stops_at_before: datetime | None = None,
    replaced_by: str | None = None,
) -> KeyEvent:
    return KeyEvent(
        id=new_id("kevt"),
        created_at=at,
        account_id=key.account_id,
        key_id=key.id,
        action=action,
        kind=key.kind,
        livemode=key.livemode,
        masked_key=masked(key),
        role=actor.role,
        operator=actor.operator,
        reason=actor.reason,
        stops_at=key.revoked_at,
        stops_at_before=stops_at_before,
        replaced_by=replaced_by,
    )


async def _insert_key(
    repo: SqlAccountRepository, key: ApiKey, plaintext: str, actor: KeyActor
) -> None:
    """Store `key`, and its CREATED event with it."""
    await repo.insert_key(key, digest_key(plaintext))
    await repo.insert_key_event(_key_event(key, KeyEventAction.CREATED, actor, key.created_at))


async def _insert_new_account(
    repo: SqlAccountRepository, made: NewAccount, actor: KeyActor
) -> None:
    await repo.insert_account(made.account)
    for key, plaintext in (
        (made.secret_api_key, made.secret_key),
        (made.publishable_api_key, made.publishable_key),
    ):
        await _insert_key(repo, key, plaintext, actor)


class AccountsService:
    def __init__(self, engine: AsyncEngine, clock: Clock | None = None) -> None:
        self._engine = engine
        self._clock = clock or SystemClock()

    async def create_account(
        self, actor: KeyActor = DATABASE_ACTOR, **options: Unpack[AccountOptions]
    ) -> NewAccount:
        """A new account and its first keys, their CREATED events recorded under `actor`."""
        actor = _checked_actor(actor)
        made = self._new_account(options)
        async with self._engine.begin() as db:
            await _insert_new_account(SqlAccountRepository(db), made, actor)
        return made

    async def create_account_once(
        self,
        idempotency_key: str,
        actor: KeyActor = DATABASE_ACTOR,
        **options: Unpack[AccountOptions],
    ) -> NewAccount | AccountMadeBefore:
        """`create_account` under the caller's idempotency key (`remit.accounts.admin_requests`):
        a retry is answered with the account the first call made, without its keys'
        plaintexts."""
        actor = _checked_actor(actor)
        made = self._new_account(options)
        async with self._engine.begin() as db:
            repo = SqlAccountRepository(db)
            before = await admin_requests.claim(
                db,
                idempotency_key,
                endpoint=admin_requests.CREATE_ACCOUNT,
                digest=admin_requests.request_digest(
                    admin_requests.CREATE_ACCOUNT, account_values(made.account)
                ),
                account_id=made.account.id,
                api_key_ids=(made.secret_api_key.id, made.publishable_api_key.id),
                now=self._clock.now(),
            )
            if before is None:
                await _insert_new_account(repo, made, actor)
                return made
            account = await repo.get_account(before.account_id)
            keys = {key.id: key for key in await repo.list_keys(before.account_id)}
        assert account is not None  # accounts are never deleted
        secret, publishable = (keys[key_id] for key_id in before.api_key_ids)
        return AccountMadeBefore(
            account=account, secret_api_key=secret, publishable_api_key=publishable
        )

    def _new_account(self, options: AccountOptions) -> NewAccount:
        """A new account and its first two keys, not yet stored; its settings checked."""
        account = checked_settings(
            Account(
                id=new_id("acct"),
                created_at=self._clock.now(),
                default_currency=options.get("default_currency", "usd"),
                raw_card_access=options.get("raw_card_access", False),
                api_version=options.get("api_version"),
                pricing=options.get("pricing") or Pricing(),
                available_delay_days=options.get("available_delay_days", 2),
                automatic_payouts=options.get("automatic_payouts", False),
                radar_enabled=options.get("radar_enabled", True),
            )
        )
        secret = generate_key(KeyKind.SECRET)
        publishable = generate_key(KeyKind.PUBLISHABLE)
        return NewAccount(
            account=account,
            secret_key=secret,
            publishable_key=publishable,
            secret_api_key=self._new_key(account.id, KeyKind.SECRET, secret),
            publishable_api_key=self._new_key(account.id, KeyKind.PUBLISHABLE, publishable),
        )

    def _new_key(self, account_id: str, kind: KeyKind, plaintext: str) -> ApiKey:
        return ApiKey(
            id=new_id("key"),
            account_id=account_id,
            kind=kind,
            last4=plaintext[-4:],
            livemode=False,
            created_at=self._clock.now(),
            revoked_at=None,
        )

    async def get_account(self, account_id: str) -> Account:
        async with self._engine.begin() as db:
            account = await SqlAccountRepository(db).get_account(account_id)
        if account is None:
            raise not_found("account", account_id)
        return account

    async def update_account(self, account_id: str, **changes: object) -> Account:
        """Change the account's settings named in `changes`; the account they leave is checked
        whole (`checked_settings`) before anything is written."""
        async with self._engine.begin() as db:
            repo = SqlAccountRepository(db)
            account = await repo.get_account(account_id, for_update=True)
            if account is None:
                raise not_found("account", account_id)
            updated = checked_settings(replace(account, **changes))  # type: ignore[arg-type]
            await repo.save_account(updated)
        return updated

    async def create_key(
        self, account_id: str, kind: KeyKind, actor: KeyActor = DATABASE_ACTOR
    ) -> tuple[ApiKey, str]:
        """A new key, its CREATED event recorded under `actor` in the same transaction."""
        actor = _checked_actor(actor)
        plaintext = generate_key(kind)
        key = self._new_key(account_id, kind, plaintext)
        async with self._engine.begin() as db:
            repo = SqlAccountRepository(db)
            if await repo.get_account(account_id) is None:
                raise not_found("account", account_id)
            await _insert_key(repo, key, plaintext, actor)
        return key, plaintext

    async def create_key_once(
        self,
        idempotency_key: str,
        account_id: str,
        kind: KeyKind,
        actor: KeyActor = DATABASE_ACTOR,
    ) -> tuple[ApiKey, str | None]:
        """`create_key` under the caller's idempotency key (`remit.accounts.admin_requests`):
        a retry is answered with the key the first call made, as it is now, and None for its
        plaintext, which was shown only to that call. Only the call that makes the key records
        its CREATED event."""
        actor = _checked_actor(actor)
        plaintext = generate_key(kind)
        key = self._new_key(account_id, kind, plaintext)
        async with self._engine.begin() as db:
            repo = SqlAccountRepository(db)
            if await repo.get_account(account_id) is None:
                raise not_found("account", account_id)
            before = await admin_requests.claim(
                db,
                idempotency_key,
                endpoint=admin_requests.CREATE_API_KEY,
                digest=admin_requests.request_digest(
                    admin_requests.CREATE_API_KEY, {"account_id": account_id, "kind": kind.value}
                ),
                account_id=account_id,
                api_key_ids=(key.id,),
                now=self._clock.now(),
            )
            if before is None:
                await _insert_key(repo, key, plaintext, actor)
                return key, plaintext
            made = [k for k in await repo.list_keys(account_id) if k.id in before.api_key_ids]
        return made[0], None

    async def reap_idempotency_keys(self) -> int:
        """Delete the CreateAccount and CreateApiKey calls kept past their retention
        (`admin_requests.reap`); how many."""
        async with self._engine.begin() as db:
            return await admin_requests.reap(db, now=self._clock.now())

    async def list_keys(self, account_id: str, *, working_only: bool = False) -> list[ApiKey]:
        """The account's keys, oldest first; `working_only`: those that still authenticate
        (a key being rolled among them, until it stops)."""
        async with self._engine.begin() as db:
            keys = await SqlAccountRepository(db).list_keys(account_id)
        if not working_only:
            return keys
        now = self._clock.now()
        return [key for key in keys if key.works_at(now)]

    async def page_keys(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
        working_only: bool = False,
    ) -> tuple[list[ApiKey], bool]:
        """One page of the account's keys, newest first, and whether more follow it (in the
        direction of travel: older ones after `starting_after`, newer before `ending_before`).

        A cursor is a key of the account, revoked or not: a key revoked since the page that
        showed it still marks where the next page starts. An unknown cursor is NOT_FOUND naming
        it, as on every list, rather than a page from the start or an empty one."""
        if starting_after is not None and ending_before is not None:
            raise invalid("starting_after and ending_before cannot be used together.")
        async with self._engine.begin() as db:
            repo = SqlAccountRepository(db)
            if await repo.get_account(account_id) is None:
                raise not_found("account", account_id)
            keys = await repo.list_keys(account_id)
        keys.reverse()  # newest first, like every list
        ids = [key.id for key in keys]
        for cursor, param in ((starting_after, "starting_after"), (ending_before, "ending_before")):
            if cursor is not None and cursor not in ids:
                raise not_found("api_key", cursor, param=param)
        if starting_after is not None:
            keys = keys[ids.index(starting_after) + 1 :]
        elif ending_before is not None:
            keys = keys[: ids.index(ending_before)]
        if working_only:
            now = self._clock.now()
            keys = [key for key in keys if key.works_at(now)]
        if ending_before is not None:
            return keys[-limit:], len(keys) > limit
        return keys[:limit], len(keys) > limit

    async def revoke_key(
        self,
        account_id: str,
        key_id: str,
        *,
        expire_after: timedelta = timedelta(0),
        replaced_by: str | None = None,
        actor: KeyActor = DATABASE_ACTOR,
    ) -> ApiKey:
        """Stop `key_id` authenticating, now or (a key being rolled) after `expire_after`; a
        key already set to stop is only brought forward. Returns the key as it now is.

        The change is recorded under `actor` in its transaction (`remit.accounts.key_events`);
        a call that changes nothing records nothing, unless it is a roll's: `replaced_by`
        names the key of the account that replaces this one, recorded as ROLLED either way."""
        if not timedelta(0) <= expire_after <= MAX_KEY_EXPIRY:
            raise invalid(
                f"expire_after must be between 0 and {MAX_KEY_EXPIRY.days} days.", "expire_after"
            )
        if replaced_by is not None and replaced_by == key_id:
            raise invalid("A key cannot be replaced by itself.", "replaced_by")
        actor = _checked_actor(actor)
        async with self._engine.begin() as db:
            repo = SqlAccountRepository(db)
            key = await repo.key_for_update(account_id, key_id)
            if key is None:
                raise not_found("api_key", key_id)
            if replaced_by is not None and not any(
                other.id == replaced_by for other in await repo.list_keys(account_id)
            ):
                raise not_found("api_key", replaced_by, param="replaced_by")
            now = self._clock.now()
            at = now + expire_after
            stopped = key
            if key.revoked_at is None or key.revoked_at > at:
                await repo.revoke_key(account_id, key_id, at)
                stopped = replace(key, revoked_at=at)
            action = stop_action(
                key.revoked_at, stopped.revoked_at, now=now, rolled=replaced_by is not None
            )
            if action is not None:
                await repo.insert_key_event(
                    _key_event(
                        stopped,
                        action,
                        actor,
                        now,
                        stops_at_before=key.revoked_at,
                        replaced_by=replaced_by,
                    )
                )
        return stopped

    async def page_key_events(
        self, account_id: str, *, limit: int, starting_after: str | None = None
    ) -> tuple[list[KeyEvent], bool]:
        """One page of the account's key events, newest first, and whether older ones follow.
        An unknown account, or a cursor that is not one of its events, is NOT_FOUND."""
        async with self._engine.begin() as db:
            repo = SqlAccountRepository(db)
            if await repo.get_account(account_id) is None:
                raise not_found("account", account_id)
            anchor = None
            if starting_after is not None:
                anchor = await repo.key_event_anchor(account_id, starting_after)
                if anchor is None:
                    raise not_found("api_key_event", starting_after, param="starting_after")
            return await repo.page_key_events(account_id, limit=limit, starting_after=anchor)

    async def authenticate(self, presented: str) -> Principal:
        if not looks_like_key(presented):
            raise _unauthenticated("Invalid API Key provided")
        digest = digest_key(presented)
        async with self._engine.begin() as db:
            principal = await SqlAccountRepository(db).principal_for_digest(
                digest, self._clock.now()
            )
        if principal is REVOKED:
            # Told apart from an unknown key, as Stripe tells an expired key apart.
            raise AccountsError(
                message="Expired API Key provided",
                kind=ErrorKind.UNAUTHENTICATED,
                code=API_KEY_EXPIRED,
            )
        if principal is None:
            raise _unauthenticated("Invalid API Key provided")
        return principal

    async def working_key_digests(self, limit: int) -> tuple[list[bytes], bool]:
        """The digests of up to `limit` keys that work now, the latest made first, and whether
        more work than were listed."""
        if not 1 <= limit <= MAX_LISTED_KEY_DIGESTS:
            raise invalid(f"limit must be between 1 and {MAX_LISTED_KEY_DIGESTS}.", "limit")
        async with self._engine.begin() as db:  # a read ends in COMMIT: a ROLLBACK drops plans
            digests = await SqlAccountRepository(db).working_key_digests(
                self._clock.now(), limit + 1
            )
        return digests[:limit], len(digests) > limit

    async def pin_api_version(self, account_id: str, version: str) -> tuple[str, bool]:
        """Pin the account to `version` unless it is pinned already.

        Returns the pin in force and whether this call set it.
        """
        async with self._engine.begin() as db:
            repo = SqlAccountRepository(db)
            account = await repo.get_account(account_id, for_update=True)
            if account is None:
                raise not_found("account", account_id)
            if account.api_version is not None:
                return account.api_version, False
            await repo.save_account(replace(account, api_version=version))
        return version, True

    async def upgrade_api_version(
        self, account_id: str, version: str, *, ordered_versions: list[str]
    ) -> str:
        """Move the pin forward to `version` (`ordered_versions` lists known ones newest first)."""
        if version not in ordered_versions:
            raise invalid(f"Unknown API version: {version}", "api_version")
        async with self._engine.begin() as db:
            repo = SqlAccountRepository(db)
            account = await repo.get_account(account_id, for_update=True)
            if account is None:
                raise not_found("account", account_id)
            current = account.api_version
            if current is not None and ordered_versions.index(version) > ordered_versions.index(
                current
            ):
                raise invalid(
                    f"Cannot move the API version back from {current} to {version}",
                    "api_version",
                )
            await repo.save_account(replace(account, api_version=version))
        return version
