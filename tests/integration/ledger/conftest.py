"""Fixtures for ledger tests: a clock that moves only when told, and fresh merchant accounts."""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.domain import Pricing
from remit.accounts.service import AccountsService
from remit.core.clock import FixedClock

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)

NewAccount = Callable[..., Awaitable[str]]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def new_account(core_engine: AsyncEngine, clock: FixedClock) -> NewAccount:
    async def create(
        *,
        pricing: Pricing | None = None,
        available_delay_days: int = 2,
        automatic_payouts: bool = False,
        default_currency: str = "usd",
    ) -> str:
        created = await AccountsService(core_engine, clock).create_account(
            pricing=pricing,
            available_delay_days=available_delay_days,
            automatic_payouts=automatic_payouts,
            default_currency=default_currency,
        )
        return created.account.id

    return create


@pytest.fixture
async def account_id(new_account: NewAccount) -> str:
    return await new_account()
