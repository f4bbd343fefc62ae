"""The facade's key lookup against a real accounts service behind the credential check: the
service's refusal of a key is an unknown key, the check's refusal of the facade itself is the
platform's failure (500, logged, never cached as a refused key)."""

import logging
from collections.abc import AsyncIterator

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.domain import Principal
from remit.accounts.grpc import accounts_registration
from remit.accounts.service import AccountsService
from remit.grpcutil.errors import ErrorMappingInterceptor
from remit.grpcutil.internal_auth import InternalAccess, internal_channel, server_interceptors
from remit.grpcutil.internal_roles import role_credential
from remit.rest.auth import Authenticator
from remit.rest.errors import StripeError
from remit.rest.key_lookup import api_key_lookup
from remit_api.accounts.v1 import accounts_pb2_grpc

pytestmark = pytest.mark.anyio

TOKEN = "the-platform-token-0123456789abcdefghijklmnopq"
UNKNOWN_KEY = "sk_test_doesnotexist1234567890abcd"


@pytest.fixture
async def target(core_engine: AsyncEngine) -> AsyncIterator[str]:
    server = grpc.aio.server(interceptors=[*server_interceptors(TOKEN), ErrorMappingInterceptor()])
    accounts_registration(AccountsService(core_engine)).add_to_server(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


def _lookup_as(channel: grpc.aio.Channel) -> Authenticator:
    return Authenticator(api_key_lookup(accounts_pb2_grpc.AccountsServiceStub(channel)))


async def test_a_key_the_accounts_service_does_not_know_is_refused_as_an_invalid_key(
    target: str,
) -> None:
    access = InternalAccess(role_credential(TOKEN, "api"))
    async with internal_channel(target, access) as channel:
        with pytest.raises(StripeError) as refused:
            await _lookup_as(channel).authenticate(f"Bearer {UNKNOWN_KEY}")
    assert refused.value.http_status == 401
    assert refused.value.message.startswith("Invalid API Key provided")


@pytest.mark.parametrize(
    ("credential", "status"),
    [
        (None, "UNAUTHENTICATED"),
        ("wrong", "UNAUTHENTICATED"),
        # A role the accounts service does not answer for this call.
        (role_credential(TOKEN, "vault"), "PERMISSION_DENIED"),
    ],
)
async def test_the_facade_refused_by_the_credential_check_is_a_server_error_never_cached(
    target: str, credential: str | None, status: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with internal_channel(target, InternalAccess(credential)) as refused_channel:
        authenticator = _lookup_as(refused_channel)
        with (
            caplog.at_level(logging.ERROR, logger="remit.rest.key_lookup"),
            pytest.raises(StripeError) as failed,
        ):
            await authenticator.authenticate(f"Bearer {UNKNOWN_KEY}")
        assert (failed.value.http_status, failed.value.type) == (500, "api_error")
        assert status in caplog.text
        assert UNKNOWN_KEY not in caplog.text
        # Once the credential is right again, the key is asked about, not refused from a cache.
        async with internal_channel(
            target, InternalAccess(role_credential(TOKEN, "api"))
        ) as channel:
            asked: list[str] = []
            fixed = api_key_lookup(accounts_pb2_grpc.AccountsServiceStub(channel))

            async def counted(key: str) -> Principal | None:
                asked.append(key)
                return await fixed(key)

            authenticator.lookup = counted
            with pytest.raises(StripeError) as refused:
                await authenticator.authenticate(f"Bearer {UNKNOWN_KEY}")
        assert refused.value.http_status == 401
        assert asked == [UNKNOWN_KEY]
