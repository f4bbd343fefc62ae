"""The operators' RPCs on held requests (`remit held-requests`), mixed into PaymentsServicer.

Not account-scoped, unlike the rest of PaymentsService: they name the account in the request, or
cover every account. Only the admin role may call them (`remit.grpcutil.role_permissions`).
"""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Final

import grpc

from remit.core.errors import invalid
from remit.grpcutil.protoconv import timestamp
from remit.payments.held_request_bounds import DEFAULT_LIST_LIMIT, MAX_AGE
from remit.payments.held_requests import (
    Failure,
    HeldRequest,
    RetryOutcome,
)
from remit.payments.idempotency import KeyRecord
from remit.payments.service import PaymentsService
from remit_api.payments.v1 import payments_pb2 as pb

Context = grpc.aio.ServicerContext[Any, Any]

_OUTCOME: Final = {
    RetryOutcome.FINISHED: pb.RETRY_HELD_REQUEST_OUTCOME_FINISHED,
    RetryOutcome.STILL_HELD: pb.RETRY_HELD_REQUEST_OUTCOME_STILL_HELD,
    RetryOutcome.DROPPED: pb.RETRY_HELD_REQUEST_OUTCOME_DROPPED,
}


def failure_message(failure: Failure) -> pb.HeldRequestFailure:
    message = pb.HeldRequestFailure(
        at=timestamp(failure.at),
        code=failure.code,
        message=failure.message,
        differing_fields=failure.differing,
    )
    if failure.reference is not None:
        message.reference = failure.reference
    if failure.operation_id is not None:
        message.operation = failure.operation_id
    return message


def held_request_message(held: HeldRequest) -> pb.HeldRequest:
    message = pb.HeldRequest(
        account_id=held.account_id,
        idempotency_key=held.key,
        endpoint=held.endpoint,
        recovery_point=held.recovery_point.value,
        created=timestamp(held.created_at),
        last_run=timestamp(held.last_run_at),
        in_progress=held.in_progress,
        completer_attempts=held.completer_attempts,
    )
    if held.request_id is not None:
        message.request_id = held.request_id
    if held.payment_intent_id is not None:
        message.payment_intent = held.payment_intent_id
    if held.charge_id is not None:
        message.charge = held.charge_id
    if held.refund_id is not None:
        message.refund = held.refund_id
    if held.last_failure is not None:
        message.last_failure.CopyFrom(failure_message(held.last_failure))
    return message


def _older_than(request: pb.ListHeldRequestsRequest) -> timedelta:
    # Checked before it becomes a timedelta, which a huge number of seconds would overflow.
    if not 0 <= request.older_than_seconds <= MAX_AGE.total_seconds():
        raise invalid(
            f"older_than_seconds must be between 0 and {int(MAX_AGE.total_seconds())}.",
            "older_than_seconds",
        )
    return timedelta(seconds=request.older_than_seconds)


class HeldRequestRpcs:
    """Mixed into PaymentsServicer, which sets `_service` and finishes a key (`resume`) as the
    completer does."""

    _service: PaymentsService
    resume: Callable[[KeyRecord], Awaitable[None]]

    async def ListHeldRequests(  # noqa: N802 (the RPC's name)
        self, request: pb.ListHeldRequestsRequest, context: Context
    ) -> pb.ListHeldRequestsResponse:
        found, has_more, as_of = await self._service.held_requests(
            older_than=_older_than(request),
            account_id=request.account_id if request.HasField("account_id") else None,
            limit=request.limit or DEFAULT_LIST_LIMIT,
        )
        return pb.ListHeldRequestsResponse(
            data=[held_request_message(held) for held in found],
            has_more=has_more,
            as_of=timestamp(as_of),
        )

    async def RetryHeldRequest(  # noqa: N802 (the RPC's name)
        self, request: pb.RetryHeldRequestRequest, context: Context
    ) -> pb.RetryHeldRequestResponse:
        if not request.account_id:
            raise invalid("account_id is required.", "account_id")
        if not request.idempotency_key:
            raise invalid("idempotency_key is required.", "idempotency_key")
        retried = await self._service.retry_held(
            request.account_id, request.idempotency_key, self.resume
        )
        response = pb.RetryHeldRequestResponse(outcome=_OUTCOME[retried.outcome])
        if retried.request is not None:
            response.held_request.CopyFrom(held_request_message(retried.request))
        return response
