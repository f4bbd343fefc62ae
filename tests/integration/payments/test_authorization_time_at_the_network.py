"""A look-up of an authorization tells when the network made it: the acquirer's record of the
operation (`Operation.created`), which the core counts the authorization's 7 days from."""

from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from remit.grpcutil.protoconv import timestamp
from remit_api.acquirer.v1 import acquirer_pb2
from tests.integration.payments.test_refused_unstarted import (
    _AN_AUTHORIZATION,
    CountingAcquirer,
    _network,
)

pytestmark = pytest.mark.anyio

MADE_AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


class RecordKeepingAcquirer(CountingAcquirer):
    """Holds one authorization, made at MADE_AT, under every reference."""

    made_at = timestamp(MADE_AT)

    async def LookupOperation(  # noqa: N802 (the RPC name)
        self,
        request: acquirer_pb2.LookupOperationRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> acquirer_pb2.LookupOperationResponse:
        return acquirer_pb2.LookupOperationResponse(
            operation=acquirer_pb2.Operation(
                id="op_1",
                reference=request.reference,
                kind=acquirer_pb2.OPERATION_KIND_AUTHORIZE,
                authorization_id="auth_1",
                amount=1000,
                currency="usd",
                merchant_id="acct_1",
                approved=True,
                created=self.made_at,
                authorization=acquirer_pb2.AuthorizationResult(
                    approved=True, authorization_id="auth_1", captured=True
                ),
            )
        )


async def test_a_look_up_tells_when_the_network_made_the_authorization() -> None:
    async with _network(RecordKeepingAcquirer(), []) as network:
        found = await network.lookup_authorization("ch_1", _AN_AUTHORIZATION)
    assert found is not None
    assert found.authorized_at == MADE_AT
    assert found.as_json()["authorized_at"] == MADE_AT.isoformat()


class UnreadableTimeAcquirer(RecordKeepingAcquirer):
    """Its record's time is past what a date can hold."""

    made_at = Timestamp(seconds=2**62)


async def test_a_record_whose_time_cannot_be_read_counts_from_its_recording() -> None:
    async with _network(UnreadableTimeAcquirer(), []) as network:
        found = await network.lookup_authorization("ch_1", _AN_AUTHORIZATION)
    assert found is not None
    assert found.authorized_at is None
