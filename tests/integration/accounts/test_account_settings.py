"""An account's settings stay within their bounds (`remit.accounts.settings`): CreateAccount and
UpdateAccountSettings refuse a setting out of bounds with INVALID_ARGUMENT naming it, and store
nothing. Stored, such a setting failed every card payment of the account after the network had
authorized it."""

from typing import Any

import grpc
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.domain import Pricing
from remit.accounts.repository import SqlAccountRepository
from remit.accounts.service import AccountsService
from remit.accounts.tables import accounts
from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.errors import remit_error_from_rpc_error
from remit_api.accounts.v1 import accounts_pb2
from tests.integration.accounts.conftest import Stub

pytestmark = pytest.mark.anyio

OUT_OF_BOUNDS: list[tuple[dict[str, Any], str]] = [
    ({"fee_percent_bps": -1000}, "fee_percent_bps"),
    ({"fee_percent_bps": -1}, "fee_percent_bps"),
    ({"fee_percent_bps": 10_001}, "fee_percent_bps"),
    ({"fee_fixed_minor": -1}, "fee_fixed_minor"),
    ({"fee_fixed_minor": 100_000_000}, "fee_fixed_minor"),
    ({"available_delay_days": -1}, "available_delay_days"),
    ({"available_delay_days": 366}, "available_delay_days"),
    ({"default_currency": ""}, "default_currency"),
    ({"default_currency": "xyz"}, "default_currency"),
    ({"default_currency": "us dollars"}, "default_currency"),
]


def _refused_on(error: grpc.aio.AioRpcError, setting: str) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = remit_error_from_rpc_error(error)
    assert detail.param == setting
    assert setting in detail.message


@pytest.mark.parametrize(("changes", "setting"), OUT_OF_BOUNDS)
async def test_a_setting_out_of_bounds_is_refused_and_the_account_left_as_it_was(
    core_engine: AsyncEngine, stub: Stub, changes: dict[str, Any], setting: str
) -> None:
    account = (await AccountsService(core_engine).create_account()).account
    before = await stub.GetAccount(accounts_pb2.GetAccountRequest(account_id=account.id))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.UpdateAccountSettings(
            accounts_pb2.UpdateAccountSettingsRequest(account_id=account.id, **changes)
        )
    _refused_on(refused.value, setting)
    after = await stub.GetAccount(accounts_pb2.GetAccountRequest(account_id=account.id))
    assert after == before


@pytest.mark.parametrize(
    ("changes", "setting"),
    # An empty default currency on creation is the documented "usd".
    [
        (changes, setting)
        for changes, setting in OUT_OF_BOUNDS
        if changes != {"default_currency": ""}
    ],
)
async def test_an_account_with_a_setting_out_of_bounds_is_not_created(
    core_engine: AsyncEngine, stub: Stub, changes: dict[str, Any], setting: str
) -> None:
    pricing = accounts_pb2.Pricing(
        fee_percent_bps=changes.get("fee_percent_bps", 290),
        fee_fixed_minor=changes.get("fee_fixed_minor", 30),
    )
    others = {name: value for name, value in changes.items() if not name.startswith("fee_")}
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CreateAccount(accounts_pb2.CreateAccountRequest(pricing=pricing, **others))
    _refused_on(refused.value, setting)
    async with core_engine.connect() as db:
        assert (await db.execute(select(func.count()).select_from(accounts))).scalar() == 0


@pytest.mark.parametrize(
    "changes",
    [
        {"fee_percent_bps": 0, "fee_fixed_minor": 0},
        {"fee_percent_bps": 10_000, "fee_fixed_minor": 99_999_999},
        {"available_delay_days": 0},
        {"available_delay_days": 365},
        {"default_currency": "jpy"},
    ],
)
async def test_settings_at_their_bounds_are_stored(
    core_engine: AsyncEngine, stub: Stub, changes: dict[str, Any]
) -> None:
    account = (await AccountsService(core_engine).create_account()).account
    updated = await stub.UpdateAccountSettings(
        accounts_pb2.UpdateAccountSettingsRequest(account_id=account.id, **changes)
    )
    settings = updated.account.settings
    shown = {
        "fee_percent_bps": settings.pricing.fee_percent_bps,
        "fee_fixed_minor": settings.pricing.fee_fixed_minor,
        "available_delay_days": settings.available_delay_days,
        "default_currency": updated.account.default_currency,
    }
    assert {name: shown[name] for name in changes} == changes


async def test_a_default_currency_is_stored_lowercase(core_engine: AsyncEngine, stub: Stub) -> None:
    created = await stub.CreateAccount(accounts_pb2.CreateAccountRequest(default_currency="EUR"))
    assert created.account.default_currency == "eur"
    updated = await stub.UpdateAccountSettings(
        accounts_pb2.UpdateAccountSettingsRequest(
            account_id=created.account.id, default_currency="GBP"
        )
    )
    assert updated.account.default_currency == "gbp"


async def test_the_service_refuses_the_same_settings_for_every_caller(
    core_engine: AsyncEngine,
) -> None:
    # `remit accounts create` calls the service directly, not over gRPC.
    service = AccountsService(core_engine)
    with pytest.raises(RemitError) as refused:
        await service.create_account(pricing=Pricing(fee_percent_bps=-1000))
    assert (refused.value.kind, refused.value.param) == (
        ErrorKind.INVALID_ARGUMENT,
        "fee_percent_bps",
    )
    with pytest.raises(RemitError) as refused:
        await service.create_account(default_currency="bogus")
    assert (refused.value.kind, refused.value.param) == (
        ErrorKind.INVALID_ARGUMENT,
        "default_currency",
    )


async def test_a_settings_change_does_not_hold_up_what_references_the_account(
    core_engine: AsyncEngine,
) -> None:
    """A row inserted for the account (a ledger posting, a customer) takes a key-share lock on
    the account's row for its foreign key. A settings change under way holds the row, but
    never changes its id, so it must not make such inserts wait."""
    service = AccountsService(core_engine)
    account_id = (await service.create_account()).account.id
    async with core_engine.begin() as changing:
        held = await SqlAccountRepository(changing).get_account(account_id, for_update=True)
        assert held is not None
        async with core_engine.begin() as referencing:
            await referencing.execute(text("SET LOCAL lock_timeout = '5s'"))
            # What PostgreSQL's foreign key check takes on the referenced row.
            found = await referencing.execute(
                text("SELECT id FROM accounts WHERE id = :id FOR KEY SHARE"), {"id": account_id}
            )
            assert found.scalar_one() == account_id
