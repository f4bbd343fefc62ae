"""CreateAccount and CreateApiKey under the `idempotency-key` metadata: a retry after a lost
answer makes no second account or key, and is answered with what the first call made, without
the plaintext keys, which are never stored. Over real gRPC, against a real PostgreSQL."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from sqlalchemy import Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts import admin_requests
from remit.accounts.domain import AccountMadeBefore, KeyKind, NewAccount
from remit.accounts.service import AccountsService
from remit.accounts.tables import accounts, admin_idempotency_keys, api_keys
from remit.core.clock import FixedClock
from remit.grpcutil.errors import remit_error_from_rpc_error
from remit.grpcutil.metadata import IDEMPOTENCY_KEY, REPLAYED_KEY
from remit.payments import idempotency
from remit_api.accounts.v1 import accounts_pb2
from tests.integration.accounts.conftest import Stub

pytestmark = pytest.mark.anyio


def _keyed(key: str) -> tuple[tuple[str, str]]:
    return ((IDEMPOTENCY_KEY, key),)


async def _count(engine: AsyncEngine, table: Table) -> int:
    async with engine.connect() as db:
        return int((await db.execute(select(func.count()).select_from(table))).scalar_one())


async def _replayed(call: "grpc.aio.UnaryUnaryCall[Any, Any]") -> bool:
    trailing = await call.trailing_metadata()
    return dict(trailing or ()).get(REPLAYED_KEY) == "true"


async def test_a_retried_create_account_makes_nothing_again_and_shows_no_plaintext(
    core_engine: AsyncEngine, stub: Stub
) -> None:
    request = accounts_pb2.CreateAccountRequest(default_currency="eur")
    first_call = stub.CreateAccount(request, metadata=_keyed("acct-once"))
    first = await first_call
    retry_call = stub.CreateAccount(request, metadata=_keyed("acct-once"))
    retried = await retry_call

    assert first.secret_key.startswith("sk_test_")
    assert first.publishable_key.startswith("pk_test_")
    assert not await _replayed(first_call)
    assert await _replayed(retry_call)
    assert retried.account == first.account
    assert (retried.secret_api_key.id, retried.publishable_api_key.id) == (
        first.secret_api_key.id,
        first.publishable_api_key.id,
    )
    assert retried.secret_api_key.last4 == first.secret_key[-4:]
    assert (retried.secret_key, retried.publishable_key) == ("", "")
    assert (await _count(core_engine, accounts), await _count(core_engine, api_keys)) == (1, 2)
    # The first answer's keys are the account's.
    principal = await AccountsService(core_engine).authenticate(first.secret_key)
    assert principal.account_id == first.account.id


async def test_a_retried_create_api_key_makes_no_second_key(
    core_engine: AsyncEngine, stub: Stub
) -> None:
    account = (await AccountsService(core_engine).create_account()).account.id
    request = accounts_pb2.CreateApiKeyRequest(
        account_id=account, kind=accounts_pb2.API_KEY_KIND_SECRET
    )
    first = await stub.CreateApiKey(request, metadata=_keyed("key-once"))
    retry_call = stub.CreateApiKey(request, metadata=_keyed("key-once"))
    retried = await retry_call

    assert first.plaintext_key.startswith("sk_test_")
    assert await _replayed(retry_call)
    assert retried.api_key == first.api_key
    assert retried.plaintext_key == ""
    assert await _count(core_engine, api_keys) == 3


async def test_a_replay_shows_the_key_as_it_is_now(core_engine: AsyncEngine, stub: Stub) -> None:
    service = AccountsService(core_engine)
    account = (await service.create_account()).account.id
    request = accounts_pb2.CreateApiKeyRequest(
        account_id=account, kind=accounts_pb2.API_KEY_KIND_SECRET
    )
    first = await stub.CreateApiKey(request, metadata=_keyed("key-then-revoked"))
    await service.revoke_key(account, first.api_key.id)
    retried = await stub.CreateApiKey(request, metadata=_keyed("key-then-revoked"))
    assert retried.api_key.id == first.api_key.id
    assert retried.api_key.HasField("revoked_at")


async def test_without_a_key_every_call_makes_its_own(core_engine: AsyncEngine, stub: Stub) -> None:
    request = accounts_pb2.CreateAccountRequest()
    first = await stub.CreateAccount(request)
    second = await stub.CreateAccount(request)
    assert first.account.id != second.account.id
    assert second.secret_key.startswith("sk_test_")


@pytest.mark.parametrize(
    "other",
    [
        accounts_pb2.CreateAccountRequest(default_currency="gbp"),
        accounts_pb2.CreateAccountRequest(default_currency="eur", radar_enabled=False),
    ],
)
async def test_a_key_reused_with_other_parameters_is_an_idempotency_error(
    stub: Stub, other: accounts_pb2.CreateAccountRequest
) -> None:
    await stub.CreateAccount(
        accounts_pb2.CreateAccountRequest(default_currency="eur"), metadata=_keyed("reused")
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CreateAccount(other, metadata=_keyed("reused"))
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    error = remit_error_from_rpc_error(refused.value)
    assert error.error_type == "idempotency_error"
    assert "with the same parameters" in error.message


async def test_the_same_call_with_defaults_spelled_out_is_the_same_call(stub: Stub) -> None:
    first = await stub.CreateAccount(
        accounts_pb2.CreateAccountRequest(), metadata=_keyed("defaults")
    )
    retried = await stub.CreateAccount(
        accounts_pb2.CreateAccountRequest(
            default_currency="USD", available_delay_days=2, radar_enabled=True
        ),
        metadata=_keyed("defaults"),
    )
    assert retried.account.id == first.account.id


async def test_a_key_reused_for_another_endpoint_is_an_idempotency_error(
    core_engine: AsyncEngine, stub: Stub
) -> None:
    account = (await AccountsService(core_engine).create_account()).account.id
    await stub.CreateApiKey(
        accounts_pb2.CreateApiKeyRequest(account_id=account, kind=accounts_pb2.API_KEY_KIND_SECRET),
        metadata=_keyed("one-endpoint"),
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CreateAccount(
            accounts_pb2.CreateAccountRequest(), metadata=_keyed("one-endpoint")
        )
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert (
        "('CreateAccount' vs 'CreateApiKey')" in remit_error_from_rpc_error(refused.value).message
    )
    assert await _count(core_engine, accounts) == 1


async def test_a_refused_call_claims_nothing_so_the_call_put_right_goes_through(
    core_engine: AsyncEngine, stub: Stub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.CreateAccount(
            accounts_pb2.CreateAccountRequest(default_currency="xyz"), metadata=_keyed("fixed")
        )
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.CreateApiKey(
            accounts_pb2.CreateApiKeyRequest(
                account_id="acct_unknown", kind=accounts_pb2.API_KEY_KIND_SECRET
            ),
            metadata=_keyed("fixed"),
        )
    made = await stub.CreateAccount(
        accounts_pb2.CreateAccountRequest(default_currency="eur"), metadata=_keyed("fixed")
    )
    assert made.secret_key.startswith("sk_test_")


async def test_calls_racing_under_one_key_make_one_key(
    core_engine: AsyncEngine, stub: Stub
) -> None:
    account = (await AccountsService(core_engine).create_account()).account.id
    request = accounts_pb2.CreateApiKeyRequest(
        account_id=account, kind=accounts_pb2.API_KEY_KIND_SECRET
    )
    answers = await asyncio.gather(
        *(stub.CreateApiKey(request, metadata=_keyed("raced")) for _ in range(5))
    )
    assert len({answer.api_key.id for answer in answers}) == 1
    assert [bool(answer.plaintext_key) for answer in answers].count(True) == 1
    assert await _count(core_engine, api_keys) == 3


async def test_the_stored_call_holds_no_plaintext(core_engine: AsyncEngine, stub: Stub) -> None:
    made = await stub.CreateAccount(accounts_pb2.CreateAccountRequest(), metadata=_keyed("dump"))
    async with core_engine.connect() as db:
        dump = " ".join(
            (await db.execute(text("SELECT t::text FROM admin_idempotency_keys AS t"))).scalars()
        )
    assert made.account.id in dump
    for secret in (made.secret_key, made.publishable_key):
        assert secret[8:] not in dump


async def test_a_key_starts_afresh_after_24_hours(core_engine: AsyncEngine) -> None:
    clock = FixedClock(datetime(2026, 11, 1, tzinfo=UTC))
    service = AccountsService(core_engine, clock)
    first = await service.create_account_once("a-day")
    clock.advance(23 * 3600)
    within = await service.create_account_once("a-day")
    clock.advance(2 * 3600)
    after = await service.create_account_once("a-day")
    assert isinstance(first, NewAccount)
    assert isinstance(within, AccountMadeBefore)
    assert within.account.id == first.account.id
    assert isinstance(after, NewAccount)
    assert after.account.id != first.account.id


async def test_calls_are_deleted_once_kept_as_long_as_a_payments_key(
    core_engine: AsyncEngine,
) -> None:
    """Every command run sends a fresh key: without this the table would only grow."""
    assert admin_requests.KEY_RETENTION == idempotency.KEY_RETENTION
    clock = FixedClock(datetime(2026, 11, 1, tzinfo=UTC))
    service = AccountsService(core_engine, clock)
    await service.create_account_once("old")
    clock.advance(timedelta(hours=60).total_seconds())
    made = await service.create_account_once("young")
    key = await service.create_key_once("young-key", made.account.id, KeyKind.SECRET)
    clock.advance((admin_requests.KEY_RETENTION - timedelta(hours=60)).total_seconds())
    # The old call is as old as the retention now: not yet past it.
    assert await service.reap_idempotency_keys() == 0
    clock.advance(1)
    assert await service.reap_idempotency_keys() == 1
    async with core_engine.connect() as db:
        left = (await db.execute(select(admin_idempotency_keys.c.idempotency_key))).scalars()
        assert sorted(left) == ["young", "young-key"]
    # What the young ones made (12 hours ago) is still replayed.
    again = await service.create_key_once("young-key", made.account.id, KeyKind.SECRET)
    assert again == (key[0], None)


async def test_the_service_replays_a_key_made_under_a_key(core_engine: AsyncEngine) -> None:
    service = AccountsService(core_engine)
    account = (await service.create_account()).account.id
    key, plaintext = await service.create_key_once("k", account, KeyKind.PUBLISHABLE)
    again, none = await service.create_key_once("k", account, KeyKind.PUBLISHABLE)
    assert plaintext is not None
    assert plaintext.startswith("pk_test_")
    assert (again.id, none) == (key.id, None)


async def test_a_key_longer_than_255_characters_is_refused(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CreateAccount(accounts_pb2.CreateAccountRequest(), metadata=_keyed("k" * 256))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
