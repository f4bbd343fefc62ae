"""CreateToken refuses `metadata`, as POST /v1/tokens refuses `card[metadata]`: Stripe's tokens
have none. The refusal is INVALID_ARGUMENT naming the field, made before anything is kept
under the call's idempotency key, and the card the facade stored for the request is deleted at
the vault as for any other refusal. The field stays in the proto, deprecated, so its number is
never reused."""

from collections.abc import AsyncIterator
from typing import Any, cast

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.grpcutil.errors import ErrorMappingInterceptor, detail_from_rpc_error
from remit.payment_methods.service import PaymentMethodsService
from remit.payments.grpc import PaymentsServicer
from remit_api.payments.v1 import payments_pb2 as pb
from remit_api.payments.v1 import payments_pb2_grpc
from tests.integration.payments.test_payment_method_data import HandingOverVault
from tests.support.accounts import call_metadata

pytestmark = pytest.mark.anyio


class Tokens:
    def __init__(self, stub: Any, vault: HandingOverVault, account_id: str) -> None:
        self.stub, self.vault, self.account_id = stub, vault, account_id

    async def create(self, vault_token: str, key: str, metadata: dict[str, str]) -> pb.Token:
        reply = await self.stub.CreateToken(
            pb.CreateTokenRequest(vault_token=vault_token, name="Ada", metadata=metadata),
            metadata=call_metadata(self.account_id, key),
        )
        return cast(pb.Token, reply.token)


@pytest.fixture
async def tokens(core_engine: AsyncEngine) -> AsyncIterator[Tokens]:
    account = await AccountsService(core_engine).create_account()
    vault = HandingOverVault()
    methods = PaymentMethodsService(core_engine, vault)
    # Tokens need neither payments nor customers.
    servicer = PaymentsServicer(cast(Any, None), cast(Any, None), methods)
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    payments_pb2_grpc.add_PaymentsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = payments_pb2_grpc.PaymentsServiceStub(channel)
        yield Tokens(stub, vault, account.account.id)
    finally:
        await channel.close()
        await server.stop(0)


async def test_metadata_is_refused_naming_the_field_and_the_card_is_deleted(
    tokens: Tokens,
) -> None:
    vault_token = tokens.vault.store()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await tokens.create(vault_token, "tok-metadata", {"order_id": "6735"})
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    detail = detail_from_rpc_error(refused.value)
    assert detail is not None
    assert detail.param == "metadata"
    assert "no metadata" in detail.message
    assert tokens.vault.deleted == [vault_token]


async def test_a_refusal_is_not_kept_under_the_key(tokens: Tokens) -> None:
    """The same key sent again without metadata makes the token: the refusal was a
    validation failure, not an answer to replay, nor one whose parameters the retry differs
    from."""
    with pytest.raises(grpc.aio.AioRpcError):
        await tokens.create(tokens.vault.store(), "tok-retried", {"order_id": "6735"})
    token = await tokens.create(tokens.vault.store(), "tok-retried", {})
    assert token.id.startswith("tok_")
    assert token.card.name == "Ada"
    assert dict(token.card.metadata) == {}


def test_the_field_is_kept_in_the_proto_deprecated() -> None:
    field = pb.CreateTokenRequest.DESCRIPTOR.fields_by_name["metadata"]
    assert field.number == 5
    assert field.GetOptions().deprecated
