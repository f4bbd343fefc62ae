"""The audit record of API keys (`remit.accounts.key_events`): each key made and each stop set
on one appends an event in the change's own transaction, a change refused appends none, and
no event holds the key or its digest. Against a real PostgreSQL."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.domain import KeyKind
from remit.accounts.key_events import (
    DATABASE_ROLE,
    UNCHECKED_ROLE,
    KeyActor,
    KeyEvent,
    KeyEventAction,
)
from remit.accounts.keys import digest_key
from remit.accounts.repository import SqlAccountRepository
from remit.accounts.service import AccountsService
from remit.accounts.tables import api_key_events, api_keys
from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.errors import remit_error_from_rpc_error
from remit_api.accounts.v1 import accounts_pb2
from tests.integration.accounts.conftest import Stub

pytestmark = pytest.mark.anyio

OPERATOR = KeyActor(role="admin", operator="alice@ops-1", reason="ticket 42")


async def _events(engine: AsyncEngine, key_id: str | None = None) -> list[KeyEvent]:
    """The events recorded, oldest first (of `key_id` only, when given)."""
    async with engine.connect() as db:
        account_ids = (await db.execute(select(api_key_events.c.account_id).distinct())).scalars()
        found: list[KeyEvent] = []
        for account_id in list(account_ids):
            page, _ = await SqlAccountRepository(db).page_key_events(
                account_id, limit=1000, starting_after=None
            )
            found.extend(page)
    found.sort(key=lambda event: (event.created_at, event.id))
    return [event for event in found if key_id is None or event.key_id == key_id]


async def _count(engine: AsyncEngine) -> int:
    async with engine.connect() as db:
        return int(
            (await db.execute(select(func.count()).select_from(api_key_events))).scalar_one()
        )


async def test_each_change_records_its_event_with_actor_reason_and_times(
    core_engine: AsyncEngine,
) -> None:
    clock = FixedClock(datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    service = AccountsService(core_engine, clock)
    made = await service.create_account()
    account = made.account.id
    first = await _events(core_engine)
    assert {(event.key_id, event.action, event.role) for event in first} == {
        (made.secret_api_key.id, KeyEventAction.CREATED, DATABASE_ROLE),
        (made.publishable_api_key.id, KeyEventAction.CREATED, DATABASE_ROLE),
    }

    key, plaintext = await service.create_key(account, KeyKind.SECRET, OPERATOR)
    (created,) = await _events(core_engine, key.id)
    assert created.action is KeyEventAction.CREATED
    assert (created.kind, created.livemode) == (KeyKind.SECRET, False)
    assert created.masked_key == f"sk_test_...{plaintext[-4:]}"
    assert (created.role, created.operator, created.reason) == ("admin", "alice@ops-1", "ticket 42")
    assert created.created_at == clock.now()

    # Scheduled, then brought forward, then brought forward to now: old and new time each.
    clock.advance(1)
    await service.revoke_key(account, key.id, expire_after=timedelta(hours=48), actor=OPERATOR)
    clock.advance(3600)
    await service.revoke_key(account, key.id, expire_after=timedelta(hours=2), actor=OPERATOR)
    clock.advance(3600)
    await service.revoke_key(account, key.id, actor=KeyActor(role="admin"))
    _, scheduled, sooner, now = await _events(core_engine, key.id)
    start = datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC)
    assert scheduled.action is KeyEventAction.REVOCATION_SCHEDULED
    assert (scheduled.stops_at_before, scheduled.stops_at) == (None, start + timedelta(hours=48))
    assert sooner.action is KeyEventAction.REVOCATION_BROUGHT_FORWARD
    assert (sooner.stops_at_before, sooner.stops_at) == (
        start + timedelta(hours=48),
        start + timedelta(hours=3),
    )
    assert now.action is KeyEventAction.REVOCATION_BROUGHT_FORWARD
    assert (now.stops_at_before, now.stops_at) == (start + timedelta(hours=3), clock.now())
    assert (now.operator, now.reason) == ("", "")

    # A revoke that changes nothing (the key stops sooner already) records nothing.
    await service.revoke_key(account, key.id, expire_after=timedelta(hours=5), actor=OPERATOR)
    assert len(await _events(core_engine, key.id)) == 4

    # Revoked at once, a key with no end: REVOKED at the call's time.
    other, _ = await service.create_key(account, KeyKind.PUBLISHABLE)
    clock.advance(1)
    await service.revoke_key(account, other.id, actor=OPERATOR)
    revoked = (await _events(core_engine, other.id))[-1]
    assert revoked.action is KeyEventAction.REVOKED
    assert (revoked.stops_at_before, revoked.stops_at) == (None, clock.now())
    assert revoked.masked_key.startswith("pk_test_...")


async def test_a_roll_records_the_old_key_the_new_and_the_grace_end(
    core_engine: AsyncEngine,
) -> None:
    clock = FixedClock(datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    service = AccountsService(core_engine, clock)
    made = await service.create_account()
    old = made.secret_api_key
    new, _ = await service.create_key(made.account.id, KeyKind.SECRET, OPERATOR)
    clock.advance(1)
    await service.revoke_key(
        made.account.id,
        old.id,
        expire_after=timedelta(hours=24),
        replaced_by=new.id,
        actor=OPERATOR,
    )
    rolled = (await _events(core_engine, old.id))[-1]
    assert rolled.action is KeyEventAction.ROLLED
    assert rolled.replaced_by == new.id
    assert (rolled.stops_at_before, rolled.stops_at) == (None, clock.now() + timedelta(hours=24))
    assert rolled.reason == "ticket 42"


@pytest.mark.parametrize(
    "refused",
    [
        "unknown key",
        "unknown account",
        "expire_after too long",
        "replaced by an unknown key",
        "replaced by itself",
        "reason too long",
        "create for an unknown account",
    ],
)
async def test_a_change_refused_records_nothing(core_engine: AsyncEngine, refused: str) -> None:
    service = AccountsService(core_engine)
    made = await service.create_account()
    account, key = made.account.id, made.secret_api_key.id
    before = await _count(core_engine)
    attempts: dict[str, Callable[[], Awaitable[object]]] = {
        "unknown key": lambda: service.revoke_key(account, "key_nope", actor=OPERATOR),
        "unknown account": lambda: service.revoke_key("acct_nope", key, actor=OPERATOR),
        "expire_after too long": lambda: service.revoke_key(
            account, key, expire_after=timedelta(days=8), actor=OPERATOR
        ),
        "replaced by an unknown key": lambda: service.revoke_key(
            account, key, replaced_by="key_nope", actor=OPERATOR
        ),
        "replaced by itself": lambda: service.revoke_key(
            account, key, replaced_by=key, actor=OPERATOR
        ),
        "reason too long": lambda: service.revoke_key(
            account, key, actor=KeyActor(role="admin", reason="x" * 501)
        ),
        "create for an unknown account": lambda: service.create_key(
            "acct_nope", KeyKind.SECRET, OPERATOR
        ),
    }
    with pytest.raises(RemitError) as raised:
        await attempts[refused]()
    assert raised.value.kind in {ErrorKind.NOT_FOUND, ErrorKind.INVALID_ARGUMENT}
    assert await _count(core_engine) == before
    (still,) = [k for k in await service.list_keys(account) if k.id == key]
    assert still.revoked_at is None


async def test_a_replayed_create_records_no_second_event(core_engine: AsyncEngine) -> None:
    service = AccountsService(core_engine)
    account = (await service.create_account()).account.id
    key, _ = await service.create_key_once("k-1", account, KeyKind.SECRET, OPERATOR)
    again, plaintext = await service.create_key_once("k-1", account, KeyKind.SECRET, OPERATOR)
    assert (again.id, plaintext) == (key.id, None)
    assert [event.action for event in await _events(core_engine, key.id)] == [
        KeyEventAction.CREATED
    ]


async def test_the_change_and_its_event_commit_together(
    core_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event that cannot be written takes its change down with it."""
    service = AccountsService(core_engine)
    made = await service.create_account()

    async def failing(self: SqlAccountRepository, event: KeyEvent) -> None:
        raise RuntimeError("the event could not be written")

    monkeypatch.setattr(SqlAccountRepository, "insert_key_event", failing)
    with pytest.raises(RuntimeError):
        await service.revoke_key(made.account.id, made.secret_api_key.id)
    with pytest.raises(RuntimeError):
        await service.create_key(made.account.id, KeyKind.SECRET)
    keys = await service.list_keys(made.account.id)
    assert len(keys) == 2
    assert all(key.revoked_at is None for key in keys)


async def test_no_event_holds_a_key_or_its_digest(core_engine: AsyncEngine) -> None:
    service = AccountsService(core_engine)
    made = await service.create_account()
    key, plaintext = await service.create_key(made.account.id, KeyKind.SECRET, OPERATOR)
    await service.revoke_key(
        made.account.id, made.secret_api_key.id, expire_after=timedelta(hours=1), replaced_by=key.id
    )
    await service.revoke_key(made.account.id, key.id)
    secrets = [plaintext, made.secret_key, made.publishable_key]
    digests = [digest_key(secret) for secret in secrets]
    async with core_engine.connect() as db:
        # Every column of every row, as text, and the bytes of any column that has them.
        rows = (await db.execute(text("SELECT e::text FROM api_key_events AS e"))).scalars().all()
        stored = set((await db.execute(select(api_keys.c.key_digest))).scalars())
    assert len(rows) == 5
    for row in rows:
        for secret, digest in zip(secrets, digests, strict=True):
            assert secret not in row
            assert secret.split("_")[2] not in row
            assert digest.hex() not in row
    assert set(digests) <= {bytes(value) for value in stored}  # the digests checked are real ones


async def test_events_cannot_be_changed_or_deleted(core_engine: AsyncEngine) -> None:
    await AccountsService(core_engine).create_account()
    for statement in (
        "UPDATE api_key_events SET reason = 'rewritten'",
        "DELETE FROM api_key_events",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with core_engine.begin() as db:
                await db.execute(text(statement))
    assert await _count(core_engine) == 2


async def _waiting_on_locks(engine: AsyncEngine, count: int) -> None:
    async with engine.connect() as db:
        for _ in range(1500):  # up to 30 s, on a busy machine
            waiting = (
                await db.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                    )
                )
            ).scalar_one()
            if waiting >= count:
                return
            await asyncio.sleep(0.02)
    raise AssertionError(f"{count} calls never waited on the key's lock")


async def test_a_roll_and_a_revoke_at_once_are_both_recorded_in_order(
    core_engine: AsyncEngine,
) -> None:
    """Both wait on the key's row; the one that goes second records the stop the first left as
    its stop before, and the key ends at the sooner stop."""
    service = AccountsService(core_engine)
    made = await service.create_account()
    account, old = made.account.id, made.secret_api_key.id
    new, _ = await service.create_key(account, KeyKind.SECRET, OPERATOR)
    async with core_engine.connect() as holder:
        await holder.execute(text("BEGIN"))
        await holder.execute(text("SELECT 1 FROM api_keys WHERE id = :id FOR UPDATE"), {"id": old})
        roll = asyncio.create_task(
            service.revoke_key(
                account,
                old,
                expire_after=timedelta(hours=24),
                replaced_by=new.id,
                actor=KeyActor(role="admin", operator="roller"),
            )
        )
        revoke = asyncio.create_task(
            service.revoke_key(account, old, actor=KeyActor(role="admin", operator="revoker"))
        )
        await _waiting_on_locks(core_engine, 2)
        await holder.execute(text("COMMIT"))
    await asyncio.gather(roll, revoke)
    first, second = (await _events(core_engine, old))[1:]
    assert {first.operator, second.operator} == {"roller", "revoker"}
    rolled = first if first.operator == "roller" else second
    assert (rolled.action, rolled.replaced_by) == (KeyEventAction.ROLLED, new.id)
    assert first.stops_at_before is None
    assert second.stops_at_before == first.stops_at
    (key,) = [k for k in await service.list_keys(account) if k.id == old]
    revoked_stop = (first if first.operator == "revoker" else second).stops_at
    assert key.revoked_at == revoked_stop
    assert key.revoked_at is not None
    assert key.revoked_at <= datetime.now(UTC)


async def test_over_grpc_the_event_names_the_unchecked_role_and_pages_newest_first(
    stub: Stub, core_engine: AsyncEngine
) -> None:
    """A server that checks no credentials records its calls as `unchecked`."""
    account = (await stub.CreateAccount(accounts_pb2.CreateAccountRequest())).account.id
    made = await stub.CreateApiKey(
        accounts_pb2.CreateApiKeyRequest(
            account_id=account,
            kind=accounts_pb2.API_KEY_KIND_SECRET,
            operator="bob@host",
            reason="new server",
        )
    )
    await stub.RevokeApiKey(
        accounts_pb2.RevokeApiKeyRequest(account_id=account, key_id=made.api_key.id, reason="r")
    )
    page = await stub.ListApiKeyEvents(
        accounts_pb2.ListApiKeyEventsRequest(account_id=account, limit=2)
    )
    assert page.has_more
    revoked, created = page.data
    assert revoked.action == accounts_pb2.API_KEY_EVENT_ACTION_REVOKED
    assert (revoked.role, revoked.operator, revoked.reason) == (UNCHECKED_ROLE, "", "r")
    assert revoked.HasField("stops_at")
    assert not revoked.HasField("stops_at_before")
    assert created.action == accounts_pb2.API_KEY_EVENT_ACTION_CREATED
    assert (created.operator, created.reason) == ("bob@host", "new server")
    assert created.masked_key == f"sk_test_...{made.plaintext_key[-4:]}"
    rest = await stub.ListApiKeyEvents(
        accounts_pb2.ListApiKeyEventsRequest(account_id=account, starting_after=created.id)
    )
    assert not rest.has_more
    assert [event.action for event in rest.data] == [accounts_pb2.API_KEY_EVENT_ACTION_CREATED] * 2
    for request, code in (
        (accounts_pb2.ListApiKeyEventsRequest(account_id="acct_nope"), grpc.StatusCode.NOT_FOUND),
        (
            accounts_pb2.ListApiKeyEventsRequest(account_id=account, starting_after="kevt_x"),
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            accounts_pb2.ListApiKeyEventsRequest(account_id=account, limit=101),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ListApiKeyEvents(request)
        assert raised.value.code() is code


@pytest.mark.parametrize(
    ("field", "told"),
    [
        ("operator", "alice@ops-1\n2026-01-02T03:04:05+00:00  kevt_forged  key_forged"),
        ("reason", "ticket 42\r\nkevt_forged"),
        ("operator", "alice\x1b[2K"),
        ("reason", "ticket\x85 42"),
        ("reason", "ticket\u2028 42"),
        ("operator", "alice\u2029"),
    ],
    ids=repr,
)
async def test_over_grpc_a_control_character_or_line_break_is_refused_naming_its_field(
    stub: Stub, core_engine: AsyncEngine, field: str, told: str
) -> None:
    """An operator or reason is printed one event a line (`remit accounts keys audit`): one
    that would break its line, or work on the terminal, is refused and records nothing."""
    account = (await stub.CreateAccount(accounts_pb2.CreateAccountRequest())).account.id
    (key,) = [
        k
        for k in (await stub.ListApiKeys(accounts_pb2.ListApiKeysRequest(account_id=account))).data
        if k.kind == accounts_pb2.API_KEY_KIND_SECRET
    ]
    before = await _count(core_engine)
    operator, reason = (told, "") if field == "operator" else ("", told)
    calls = (
        stub.CreateApiKey(
            accounts_pb2.CreateApiKeyRequest(
                account_id=account,
                kind=accounts_pb2.API_KEY_KIND_SECRET,
                operator=operator,
                reason=reason,
            )
        ),
        stub.RevokeApiKey(
            accounts_pb2.RevokeApiKeyRequest(
                account_id=account, key_id=key.id, operator=operator, reason=reason
            )
        ),
    )
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert (raised.value.details() or "").startswith(
            f"{field} must not contain control characters or line breaks (found U+"
        )
        assert remit_error_from_rpc_error(raised.value).param == field
    assert await _count(core_engine) == before
    keys = (await stub.ListApiKeys(accounts_pb2.ListApiKeysRequest(account_id=account))).data
    assert len(keys) == 2
