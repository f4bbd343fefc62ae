"""Accounts and keys against a real PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.domain import KeyKind
from remit.accounts.service import AccountsService
from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError

pytestmark = pytest.mark.anyio


async def test_a_new_account_gets_a_secret_and_a_publishable_key_that_authenticate(
    core_engine: AsyncEngine,
) -> None:
    service = AccountsService(core_engine)
    created = await service.create_account()
    assert created.account.id.startswith("acct_")
    assert created.secret_key.startswith("sk_test_")
    assert created.publishable_key.startswith("pk_test_")

    secret = await service.authenticate(created.secret_key)
    publishable = await service.authenticate(created.publishable_key)
    assert (secret.account_id, secret.key_kind) == (created.account.id, KeyKind.SECRET)
    assert (publishable.account_id, publishable.key_kind) == (
        created.account.id,
        KeyKind.PUBLISHABLE,
    )


async def test_keys_are_stored_only_as_digests(core_engine: AsyncEngine) -> None:
    created = await AccountsService(core_engine).create_account()
    async with core_engine.connect() as db:
        dump = (
            (
                await db.execute(
                    text("SELECT api_keys::text FROM api_keys WHERE account_id = :account"),
                    {"account": created.account.id},
                )
            )
            .scalars()
            .all()
        )
    assert len(dump) == 2
    for row in dump:
        assert created.secret_key not in row
        assert created.publishable_key not in row
        assert created.secret_key[8:] not in row


@pytest.mark.parametrize(
    "presented",
    ["", "sk_test_", "not-a-key", "sk_test_doesnotexist1234567890", "sk_test_a b c"],
)
async def test_an_unknown_or_malformed_key_is_unauthenticated(
    core_engine: AsyncEngine, presented: str
) -> None:
    with pytest.raises(RemitError) as raised:
        await AccountsService(core_engine).authenticate(presented)
    assert raised.value.kind is ErrorKind.UNAUTHENTICATED


async def test_a_revoked_key_no_longer_authenticates(core_engine: AsyncEngine) -> None:
    service = AccountsService(core_engine)
    created = await service.create_account()
    key, plaintext = await service.create_key(created.account.id, KeyKind.SECRET)
    assert (await service.authenticate(plaintext)).key_id == key.id
    await service.revoke_key(created.account.id, key.id)
    with pytest.raises(RemitError) as refused:
        await service.authenticate(plaintext)
    # Told apart from a key that never existed (Stripe's code for an expired key).
    assert (refused.value.kind, refused.value.code) == (
        ErrorKind.UNAUTHENTICATED,
        "api_key_expired",
    )
    # The account's other keys are untouched.
    assert (await service.authenticate(created.secret_key)).account_id == created.account.id


async def test_the_first_pin_wins_and_later_pins_return_it(core_engine: AsyncEngine) -> None:
    service = AccountsService(core_engine)
    created = await service.create_account()
    assert await service.pin_api_version(created.account.id, "2019-02-11") == ("2019-02-11", True)
    assert await service.pin_api_version(created.account.id, "2026-10-28.endive") == (
        "2019-02-11",
        False,
    )


async def test_an_upgrade_moves_the_pin_forward_but_never_back(core_engine: AsyncEngine) -> None:
    service = AccountsService(core_engine)
    account_id = (await service.create_account(api_version="2019-02-11")).account.id
    known = ["2026-10-28.endive", "2022-11-15", "2019-02-11"]
    assert await service.upgrade_api_version(account_id, "2022-11-15", ordered_versions=known) == (
        "2022-11-15"
    )
    with pytest.raises(RemitError) as raised:
        await service.upgrade_api_version(account_id, "2019-02-11", ordered_versions=known)
    assert raised.value.param == "api_version"
    assert (await service.get_account(account_id)).api_version == "2022-11-15"


async def test_a_key_revoked_after_a_while_works_until_then_and_can_be_brought_forward(
    core_engine: AsyncEngine,
) -> None:
    clock = FixedClock(datetime.now(UTC))
    service = AccountsService(core_engine, clock)
    created = await service.create_account()
    key, plaintext = await service.create_key(created.account.id, KeyKind.SECRET)
    rolled = await service.revoke_key(created.account.id, key.id, expire_after=timedelta(hours=24))
    assert rolled.revoked_at == clock.now() + timedelta(hours=24)
    clock.advance(23 * 3600)
    assert (await service.authenticate(plaintext)).key_id == key.id
    assert key.id in [k.id for k in await service.list_keys(created.account.id, working_only=True)]
    # Asking for a later stop does not push it back; asking for an earlier one brings it forward.
    later = await service.revoke_key(created.account.id, key.id, expire_after=timedelta(days=2))
    assert later.revoked_at == rolled.revoked_at
    now = await service.revoke_key(created.account.id, key.id)
    assert now.revoked_at == clock.now()
    with pytest.raises(RemitError) as refused:
        await service.authenticate(plaintext)
    assert refused.value.code == "api_key_expired"
    working = await service.list_keys(created.account.id, working_only=True)
    assert key.id not in [k.id for k in working]


async def test_revoking_refuses_a_delay_beyond_a_week_and_an_unknown_key(
    core_engine: AsyncEngine,
) -> None:
    service = AccountsService(core_engine)
    created = await service.create_account()
    keys = await service.list_keys(created.account.id)
    for delay in (timedelta(days=8), timedelta(seconds=-1)):
        with pytest.raises(RemitError) as refused:
            await service.revoke_key(created.account.id, keys[0].id, expire_after=delay)
        assert (refused.value.kind, refused.value.param) == (
            ErrorKind.INVALID_ARGUMENT,
            "expire_after",
        )
    with pytest.raises(RemitError) as missing:
        await service.revoke_key(created.account.id, "key_doesnotexist")
    assert missing.value.kind is ErrorKind.NOT_FOUND
    assert all(key.revoked_at is None for key in await service.list_keys(created.account.id))
