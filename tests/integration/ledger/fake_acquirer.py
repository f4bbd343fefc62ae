"""A stand-in AcquirerService that serves a settlement report and operations the test decides."""

from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import grpc
from grpc_status import rpc_status

from remit.core.errors import RemitError
from remit.grpcutil.errors import to_rpc_status
from remit_api.acquirer.v1 import acquirer_pb2 as pb
from remit_api.acquirer.v1 import acquirer_pb2_grpc


def settlement_row(
    kind: str,
    reference: str,
    amount: int,
    merchant: str,
    currency: str = "usd",
    fee: int = 0,
    released: int | None = None,
) -> pb.SettlementRow:
    """`released` None: the row does not say what the capture released, as an acquirer before
    it recorded releases."""
    return pb.SettlementRow(
        kind=pb.SETTLEMENT_KIND_CAPTURE if kind == "capture" else pb.SETTLEMENT_KIND_REFUND,
        reference=reference,
        authorization_id=f"auth_{reference}",
        operation_id=f"op_{reference}",
        amount=amount,
        currency=currency,
        fee=fee,
        merchant_id=merchant,
        released=released,
    )


def settled_operation(
    kind: str, reference: str, amount: int, merchant: str, settled_at: datetime
) -> pb.Operation:
    """An approved capture or refund as LookupOperation answers it."""
    operation = pb.Operation(
        id=f"op_{reference}",
        reference=reference,
        kind=pb.OPERATION_KIND_CAPTURE if kind == "capture" else pb.OPERATION_KIND_REFUND,
        authorization_id=f"auth_{reference}",
        amount=amount,
        currency="usd",
        approved=True,
        merchant_id=merchant,
    )
    operation.created.FromDatetime(settled_at)
    operation.settled_at.FromDatetime(settled_at)
    return operation


@dataclass
class FakeAcquirer(acquirer_pb2_grpc.AcquirerServiceServicer):
    rows: list[pb.SettlementRow] = field(default_factory=list)
    asked: list[tuple[str, str]] = field(default_factory=list)
    # What LookupOperation finds, by reference; any other reference is NOT_FOUND.
    operations: dict[str, pb.Operation] = field(default_factory=dict)
    looked_up: list[str] = field(default_factory=list)
    # What GetSettlementReport answers instead of a report: the acquirer's refusal, with its
    # ErrorDetail, as its error mapping sends it.
    refusal: RemitError | None = None

    def GetSettlementReport(  # noqa: N802 (the RPC's name)
        self, request: pb.GetSettlementReportRequest, context: Any
    ) -> pb.GetSettlementReportResponse:
        self.asked.append((request.date, request.merchant_id))
        if self.refusal is not None:
            context.abort_with_status(rpc_status.to_status(to_rpc_status(self.refusal)))
        rows = [
            r for r in self.rows if not request.merchant_id or r.merchant_id == request.merchant_id
        ]
        return pb.GetSettlementReportResponse(date=request.date, rows=rows)

    def LookupOperation(  # noqa: N802 (the RPC's name)
        self, request: pb.LookupOperationRequest, context: Any
    ) -> pb.LookupOperationResponse:
        self.looked_up.append(request.reference)
        operation = self.operations.get(request.reference)
        if operation is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"No such operation: '{request.reference}'")
        return pb.LookupOperationResponse(operation=operation)


@contextmanager
def serving(fake: FakeAcquirer) -> Iterator[int]:
    """Serve `fake` on 127.0.0.1; yields the port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    acquirer_pb2_grpc.add_AcquirerServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None)
