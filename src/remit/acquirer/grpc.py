"""AcquirerService over gRPC: protobuf in, use case, protobuf out. Nothing else.

The card number and CVC are wrapped in `Secret` the moment they leave the request message.
"""

from typing import Any, Final

import grpc

from remit.acquirer.cards import Risk
from remit.acquirer.domain import (
    AuthorizationRequest,
    AuthorizationResult,
    CheckResult,
    NetworkStatus,
    Operation,
    OperationKind,
    SettlementKind,
    SettlementRow,
)
from remit.acquirer.faults import FaultConfig
from remit.acquirer.interceptor import FaultInjectionInterceptor
from remit.acquirer.service import AcquirerService
from remit.acquirer.settlement_pages import page_limit, page_token, resumed_from_token
from remit.core.secrets import Secret
from remit.core.settlement_days import parse_day
from remit.grpcutil.errors import ErrorMappingInterceptor
from remit.grpcutil.protoconv import timestamp
from remit.grpcutil.server import ServiceRegistration
from remit_api.acquirer.v1 import acquirer_pb2 as pb
from remit_api.acquirer.v1 import acquirer_pb2_grpc
from remit_api.common.v1 import common_pb2

Context = grpc.aio.ServicerContext[Any, Any]

_NETWORK_STATUS: Final = {
    NetworkStatus.APPROVED_BY_NETWORK: common_pb2.NETWORK_STATUS_APPROVED_BY_NETWORK,
    NetworkStatus.DECLINED_BY_NETWORK: common_pb2.NETWORK_STATUS_DECLINED_BY_NETWORK,
    NetworkStatus.NOT_SENT_TO_NETWORK: common_pb2.NETWORK_STATUS_NOT_SENT_TO_NETWORK,
}
_CHECK: Final = {
    CheckResult.PASS: common_pb2.CARD_CHECK_RESULT_PASS,
    CheckResult.FAIL: common_pb2.CARD_CHECK_RESULT_FAIL,
    CheckResult.UNAVAILABLE: common_pb2.CARD_CHECK_RESULT_UNAVAILABLE,
    CheckResult.UNCHECKED: common_pb2.CARD_CHECK_RESULT_UNCHECKED,
}
_RISK: Final = {
    Risk.NORMAL: common_pb2.RISK_LEVEL_NORMAL,
    Risk.ELEVATED: common_pb2.RISK_LEVEL_ELEVATED,
    Risk.HIGHEST: common_pb2.RISK_LEVEL_HIGHEST,
}
_KIND: Final = {
    OperationKind.AUTHORIZE: pb.OPERATION_KIND_AUTHORIZE,
    OperationKind.CAPTURE: pb.OPERATION_KIND_CAPTURE,
    OperationKind.VOID: pb.OPERATION_KIND_VOID,
    OperationKind.REFUND: pb.OPERATION_KIND_REFUND,
}
_SETTLEMENT_KIND: Final = {
    SettlementKind.CAPTURE: pb.SETTLEMENT_KIND_CAPTURE,
    SettlementKind.REFUND: pb.SETTLEMENT_KIND_REFUND,
}


def authorization_request(request: pb.AuthorizeRequest) -> AuthorizationRequest:
    address = request.billing_address if request.HasField("billing_address") else None
    return AuthorizationRequest(
        reference=request.reference,
        card_number=Secret(request.card_number),
        exp_month=request.exp_month,
        exp_year=request.exp_year,
        cvc=Secret(request.cvc) if request.HasField("cvc") else None,
        amount_minor=request.amount,
        currency=request.currency.lower(),
        capture=request.capture,
        merchant_id=request.merchant_id,
        billing_line1=address.line1 if address is not None and address.HasField("line1") else None,
        billing_postal_code=address.postal_code
        if address is not None and address.HasField("postal_code")
        else None,
        three_d_secure_authenticated=request.three_d_secure_authenticated,
        off_session=request.off_session,
        setup_off_session=request.setup_off_session,
        initial_network_transaction_id=request.initial_network_transaction_id or None,
    )


def authorization_result_message(
    result: AuthorizationResult, fee_minor: int
) -> pb.AuthorizationResult:
    """The answer to an authorization; `fee_minor` is what its operation withholds (nonzero
    only when it captured), so the caller can book the fee with the capture."""
    return pb.AuthorizationResult(
        approved=result.approved,
        authorization_id=result.authorization_id or "",
        network_status=_NETWORK_STATUS[result.network_status],
        code=result.code or "",
        decline_code=result.decline_code or "",
        message=result.message or "",
        cvc_check=_CHECK[result.cvc_check],
        address_line1_check=_CHECK[result.address_line1_check],
        address_postal_code_check=_CHECK[result.address_postal_code_check],
        risk_level_hint=_RISK[result.risk],
        captured=result.captured,
        network_transaction_id=result.network_transaction_id or "",
        authorization_code=result.authorization_code or "",
        operation_id=result.operation_id,
        bypass_pending=result.bypass_pending,
        dispute_expected=result.dispute_expected,
        fee=fee_minor,
    )


def operation_message(operation: Operation) -> pb.Operation:
    message = pb.Operation(
        id=operation.id,
        reference=operation.reference,
        kind=_KIND[operation.kind],
        authorization_id=operation.authorization_id or "",
        amount=operation.amount_minor,
        currency=operation.currency,
        approved=operation.approved,
        code=operation.code or "",
        message=operation.message or "",
        created=timestamp(operation.created_at),
        merchant_id=operation.merchant_id,
        fee=operation.fee_minor,
        released=operation.released_minor,
    )
    if operation.authorization_result is not None:
        message.authorization.CopyFrom(
            authorization_result_message(operation.authorization_result, operation.fee_minor)
        )
    if operation.settled_at is not None:
        message.settled_at.CopyFrom(timestamp(operation.settled_at))
    return message


def settlement_row_message(row: SettlementRow) -> pb.SettlementRow:
    return pb.SettlementRow(
        kind=_SETTLEMENT_KIND[row.kind],
        reference=row.reference,
        authorization_id=row.authorization_id,
        operation_id=row.operation_id,
        amount=row.amount_minor,
        currency=row.currency,
        fee=row.fee_minor,
        settled_at=timestamp(row.settled_at),
        merchant_id=row.merchant_id,
        released=row.released_minor,
    )


class AcquirerServicer(acquirer_pb2_grpc.AcquirerServiceServicer):
    def __init__(self, service: AcquirerService) -> None:
        self._service = service

    async def Authorize(
        self, request: pb.AuthorizeRequest, context: Context
    ) -> pb.AuthorizeResponse:
        recorded = await self._service.authorize(authorization_request(request))
        result = recorded.operation.authorization_result
        assert result is not None, "an authorize operation always carries its result"
        return pb.AuthorizeResponse(
            result=authorization_result_message(result, recorded.operation.fee_minor),
            replayed=recorded.replayed,
        )

    async def Capture(self, request: pb.CaptureRequest, context: Context) -> pb.CaptureResponse:
        recorded = await self._service.capture(
            request.reference, request.authorization_id, request.amount,
            keep_open=request.keep_open,
        )  # fmt: skip
        return pb.CaptureResponse(
            operation=operation_message(recorded.operation), replayed=recorded.replayed
        )

    async def Void(self, request: pb.VoidRequest, context: Context) -> pb.VoidResponse:
        recorded = await self._service.void(request.reference, request.authorization_id)
        return pb.VoidResponse(
            operation=operation_message(recorded.operation), replayed=recorded.replayed
        )

    async def Refund(self, request: pb.RefundRequest, context: Context) -> pb.RefundResponse:
        recorded = await self._service.refund(
            request.reference, request.authorization_id, request.amount
        )
        return pb.RefundResponse(
            operation=operation_message(recorded.operation), replayed=recorded.replayed
        )

    async def LookupOperation(
        self, request: pb.LookupOperationRequest, context: Context
    ) -> pb.LookupOperationResponse:
        operation = await self._service.lookup(request.reference)
        return pb.LookupOperationResponse(operation=operation_message(operation))

    async def GetSettlementReport(
        self, request: pb.GetSettlementReportRequest, context: Context
    ) -> pb.GetSettlementReportResponse:
        # The days the commands take (`remit.core.settlement_days`): one not begun has nothing
        # settled, and one not over (today, or yesterday while its last operations may still be
        # committing) only what has settled so far, which the caller asks for. Judged at the
        # first page, and carried in the page token to the others, which read its snapshot.
        merchant_id = request.merchant_id or None
        resumed = resumed_from_token(request.page_token, parse_day(request.date), merchant_id)
        report_day = self._service.report_day(
            request.date, allow_partial=request.allow_partial, resumed=resumed
        )
        day = report_day.day
        page = await self._service.settlement_page(
            day,
            merchant_id,
            after=None if resumed is None else resumed.cursor,
            limit=page_limit(request.page_size),
        )
        next_page_token = (
            ""
            if page.next is None
            else page_token(page.next, day, merchant_id, partial=report_day.partial)
        )
        return pb.GetSettlementReportResponse(
            date=day.isoformat(),
            rows=[settlement_row_message(row) for row in page.rows],
            next_page_token=next_page_token,
            partial=report_day.partial,
        )


def acquirer_registration(service: AcquirerService) -> ServiceRegistration:
    servicer = AcquirerServicer(service)
    return ServiceRegistration(
        full_name=pb.DESCRIPTOR.services_by_name["AcquirerService"].full_name,
        add_to_server=lambda server: acquirer_pb2_grpc.add_AcquirerServiceServicer_to_server(
            servicer, server
        ),
    )


def acquirer_interceptors(faults: FaultConfig) -> list[grpc.aio.ServerInterceptor]:
    """Faults outermost, so a lost response is lost after the call committed."""
    return [FaultInjectionInterceptor(faults), ErrorMappingInterceptor()]
