"""A call whose remit-account-id no account could have (too long, or with characters no id
has) is refused as the caller's mistake, INVALID_ARGUMENT naming the metadata, before any query:
not looked up as an account that does not exist, nor listed as one with nothing."""

from typing import Any

import grpc
import pytest

from remit.core.ids import MAX_RANDOM_LENGTH
from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.metadata import ACCOUNT_KEY, IDEMPOTENCY_KEY
from remit_api.payments.v1 import payments_pb2 as pb

pytestmark = pytest.mark.anyio

# What gRPC's own clients send as text: printable ASCII (they refuse a NUL or non-ASCII
# value before it leaves; `tests/unit/grpcutil/test_call_metadata.py` covers those).
MALFORMED = ["acct_" + "a" * 300, "acct_" + "a" * (MAX_RANDOM_LENGTH + 1), "acct_a b", "acct_a-b!"]


def _refused_detail(raised: pytest.ExceptionInfo[grpc.aio.AioRpcError]) -> tuple[str, str]:
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    detail = detail_from_rpc_error(raised.value)
    assert detail is not None
    return detail.param, detail.message


@pytest.mark.parametrize("account_id", MALFORMED)
async def test_a_keyed_create_for_a_malformed_account_id_is_invalid_argument(
    payments_stub: Any, account_id: str
) -> None:
    request = pb.CreatePaymentIntentRequest(amount=1000, currency="usd")
    metadata = ((ACCOUNT_KEY, account_id), (IDEMPOTENCY_KEY, "k"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await payments_stub.CreatePaymentIntent(request, metadata=metadata)
    param, message = _refused_detail(raised)
    assert param == ACCOUNT_KEY
    assert message.startswith(f"The {ACCOUNT_KEY} metadata must be an account id")


@pytest.mark.parametrize("account_id", MALFORMED)
async def test_a_listing_for_a_malformed_account_id_is_invalid_argument_not_empty(
    payments_stub: Any, account_id: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await payments_stub.ListPaymentIntents(
            pb.ListPaymentIntentsRequest(), metadata=((ACCOUNT_KEY, account_id),)
        )
    assert _refused_detail(raised)[0] == ACCOUNT_KEY


async def test_a_well_formed_account_id_is_still_served(
    payments_stub: Any, account_id: str
) -> None:
    listed = await payments_stub.ListPaymentIntents(
        pb.ListPaymentIntentsRequest(), metadata=((ACCOUNT_KEY, account_id),)
    )
    assert list(listed.data) == []
