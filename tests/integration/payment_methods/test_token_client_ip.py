"""CreateToken's `client_ip` is an IP address or nothing: anything else (a host name, a range,
text of any length) is the caller's mistake, refused before the token is made, and the card the
facade stored for the request is deleted at the vault as for any other refusal. An address is
kept in the canonical form Radar gives every address (remit.radar.ip_addresses)."""

from collections.abc import AsyncIterator
from typing import Any

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

    async def create(self, client_ip: str) -> tuple[str, Any]:
        """The vault token stored for the request, and the reply."""
        vault_token = self.vault.store()
        reply = self.stub.CreateToken(
            pb.CreateTokenRequest(vault_token=vault_token, client_ip=client_ip),
            metadata=call_metadata(self.account_id),
        )
        return vault_token, reply


@pytest.fixture
async def tokens(core_engine: AsyncEngine) -> AsyncIterator[Tokens]:
    async with serving_tokens(core_engine) as served:
        yield Tokens(served.stub, served.vault, served.account_id)


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("::FFFF:cb00:7107", "203.0.113.7"),
    ],
)
async def test_an_ip_address_is_kept_in_its_canonical_form(
    tokens: Tokens, sent: str, kept: str
) -> None:
    _, pending = await tokens.create(sent)
    token = (await pending).token
    assert token.client_ip == kept
    assert tokens.vault.deleted == []


@pytest.mark.parametrize(
    "sent",
    ["", "localhost", "203.0.113.7/24", "203.0.113.256", "fe80::1%eth0", "1" * 6000],
    ids=["empty", "host name", "range", "out of range", "zone", "6000 characters"],
)
async def test_anything_but_an_ip_address_is_refused(tokens: Tokens, sent: str) -> None:
    vault_token, pending = await tokens.create(sent)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await pending
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    detail = detail_from_rpc_error(refused.value)
    assert detail is not None
    assert detail.param == "client_ip"
    assert len(detail.message) < 400
    assert tokens.vault.deleted == [vault_token]
