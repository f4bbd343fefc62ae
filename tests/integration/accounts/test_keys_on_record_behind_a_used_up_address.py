"""A merchant whose key the api process has not found good lately (it restarted, or the key was
idle for weeks) still gets in from an address a key guesser has used up: its key is on record
at the accounts service, read over gRPC as the facade reads it (as the api role), at most once
a minute, while the guesser's keys are still refused without a look-up."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request

from remit.accounts.domain import Principal
from remit.accounts.grpc import accounts_registration
from remit.accounts.service import AccountsService
from remit.core.clock import FixedClock
from remit.grpcutil.internal_auth import InternalAccess, internal_channel
from remit.grpcutil.internal_roles import API, role_credential
from remit.rest.app import _authenticated
from remit.rest.auth import RECORDS_TTL_S, Authenticator, Records
from remit.rest.dependencies import Dependencies
from remit.rest.errors import StripeError
from remit.rest.key_lookup import api_key_lookup, key_digests_on_record
from remit.rest.rate_limits import RateLimits, TokenBuckets
from remit_api.accounts.v1 import accounts_pb2_grpc
from tests.integration.test_admin_command_exits import serving
from tests.support.commands import TOKEN
from tests.support.rest_facade import faked_dependencies

pytestmark = pytest.mark.anyio

SHARED = "203.0.113.50"


class StillClock:
    """The address's bucket never refills: a guesser sends faster than it would."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Counted:
    def __init__(self, records: Records) -> None:
        self.records, self.reads = records, 0

    async def __call__(self) -> frozenset[bytes]:
        self.reads += 1
        return await self.records()


def _facade(authenticator: Authenticator) -> Dependencies:
    rate_limits = RateLimits(TokenBuckets(0), TokenBuckets(0), TokenBuckets(3, StillClock()))
    return faked_dependencies(authenticator, rate_limits=rate_limits)


async def _status(deps: Dependencies, key: str) -> int | Principal:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/balance",
        "headers": [(b"authorization", f"Bearer {key}".encode())],
        "client": (SHARED, 40000),
    }
    try:
        return await _authenticated(Request(scope), deps)
    except StripeError as error:
        return error.http_status


async def test_a_key_idle_for_30_days_gets_in_after_a_restart_from_a_used_up_address(
    core_engine: AsyncEngine,
) -> None:
    month_ago = FixedClock(datetime.now(UTC) - timedelta(days=30))
    made = await AccountsService(core_engine, month_ago).create_account()
    service = AccountsService(core_engine)
    async with serving(accounts_registration(service).add_to_server) as port:
        access = InternalAccess(token=role_credential(TOKEN, API))
        channel = internal_channel(f"127.0.0.1:{port}", access)
        try:
            accounts = accounts_pb2_grpc.AccountsServiceStub(channel)
            clock = StillClock()
            # A freshly started api process: it has found no key good yet.
            records = Counted(key_digests_on_record(accounts))
            authenticator = Authenticator(api_key_lookup(accounts), clock, records=records)
            deps = _facade(authenticator)
            guesses = [await _status(deps, f"sk_test_guess{n:020d}") for n in range(5)]
            assert guesses == [401, 401, 401, 429, 429]
            assert records.reads == 1  # read once the address was used up, not before

            principal = await _status(deps, made.secret_key)
            assert isinstance(principal, Principal)
            assert principal.account_id == made.account.id
            # The guesser is still held back, and the keys are not read again within a minute.
            clock.now += RECORDS_TTL_S - 1
            assert await _status(deps, "sk_test_guess99999999999999999999") == 429
            assert await _status(deps, made.publishable_key) != 429
            assert records.reads == 1
            # Revoked since the read: refused by its look-up, and no longer let past the limit.
            await service.revoke_key(made.account.id, principal.key_id)
            clock.now += 10  # past its cache entry
            assert await _status(deps, made.secret_key) == 401
            clock.now += 10  # past its refusal's
            assert await _status(deps, made.secret_key) == 429
        finally:
            await channel.close()
