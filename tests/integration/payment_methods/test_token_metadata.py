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

from remit.grpcutil.errors import detail_from_rpc_error
from remit_api.payments.v1 import payments_pb2 as pb
from tests.integration.payment_methods.token_server import serving_tokens
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
    async with serving_tokens(core_engine) as served:
        yield Tokens(served.stub, served.vault, served.account_id)


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
