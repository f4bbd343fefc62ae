"""The dispute RPCs, mixed into PaymentsServicer: protobuf to call, nothing else."""

from typing import Any, Final

import grpc

from remit.core.errors import invalid
from remit.core.metadata import requested_metadata
from remit.grpcutil.metadata import call_context
from remit.grpcutil.protoconv import filter_bound
from remit.ledger.objects import BalanceTransaction
from remit.payments.dispute_messages import dispute_message
from remit.payments.disputes import Dispute, checked_evidence
from remit.payments.disputing import DisputesService
from remit.payments.keyed_rpc import client_keyed, reply, serialized
from remit.payments.requests import note_call
from remit.storage.pagination import CreatedBounds
from remit_api.payments.v1 import payments_pb2 as pb

Context = grpc.aio.ServicerContext[Any, Any]
Shown = tuple[Dispute, list[BalanceTransaction]]


def _optional(request: Any, name: str) -> Any:
    return getattr(request, name) if request.HasField(name) else None


# The fields of DisputeEvidence a dispute shows and an update does not take: the message is
# the dispute's and the request's alike. remit takes no appeals, and no enhanced evidence
# program applies to its disputes.
_SHOWN_ONLY: Final = ("appeal", "enhanced_evidence")


def _given_evidence(evidence: pb.DisputeEvidence) -> dict[str, str]:
    """The evidence fields the request sets (a present empty string clears one), checked."""
    for name in _SHOWN_ONLY:
        # Refused even empty: a request that copies a dispute's evidence sets them so.
        if evidence.HasField(name):
            raise invalid(
                f"evidence.{name} is shown on a dispute but cannot be given in an update.",
                f"evidence[{name}]",
            )
    return checked_evidence({field.name: value for field, value in evidence.ListFields()})


class DisputeRpcs:
    """Mixed into PaymentsServicer, which sets `_disputes`."""

    _disputes: DisputesService

    async def GetDispute(  # noqa: N802 (the RPC's name)
        self, request: pb.GetDisputeRequest, context: Context
    ) -> pb.GetDisputeResponse:
        call = call_context(context)
        dispute, moved = await self._disputes.get(call.account_id, request.id)
        return pb.GetDisputeResponse(dispute=dispute_message(dispute, moved))

    async def ListDisputes(  # noqa: N802 (the RPC's name)
        self, request: pb.ListDisputesRequest, context: Context
    ) -> pb.ListDisputesResponse:
        call = call_context(context)
        created = request.created
        found, has_more = await self._disputes.list_disputes(
            call.account_id,
            limit=request.limit or 10,
            starting_after=_optional(request, "starting_after"),
            ending_before=_optional(request, "ending_before"),
            created=CreatedBounds(
                gt=filter_bound(created, "gt"),
                gte=filter_bound(created, "gte"),
                lt=filter_bound(created, "lt"),
                lte=filter_bound(created, "lte"),
            ),
            charge_id=_optional(request, "charge"),
            payment_intent_id=_optional(request, "payment_intent"),
        )
        return pb.ListDisputesResponse(
            data=[dispute_message(dispute, moved) for dispute, moved in found], has_more=has_more
        )

    async def UpdateDispute(  # noqa: N802 (the RPC's name)
        self, request: pb.UpdateDisputeRequest, context: Context
    ) -> pb.UpdateDisputeResponse:
        call = call_context(context)
        note_call(call.request_id, call.idempotency_key)
        # Checked before the key is claimed: a request whose parameters fail leaves it free.
        evidence = _given_evidence(request.evidence)

        def answer(shown: Shown) -> pb.UpdateDisputeResponse:
            return pb.UpdateDisputeResponse(dispute=dispute_message(*shown))

        result = await self._disputes.update(
            call.account_id,
            request.id,
            evidence=evidence,
            metadata=requested_metadata(request.metadata),
            clear_metadata=request.clear_metadata,
            unset_metadata=list(request.unset_metadata_keys),
            # Unset: Stripe's default, which submits a request that gives evidence.
            submit=_optional(request, "submit"),
            keyed=client_keyed(context, "UpdateDispute", request, serialized(answer)),
        )
        return await reply(result, pb.UpdateDisputeResponse, answer, context)

    async def CloseDispute(  # noqa: N802 (the RPC's name)
        self, request: pb.CloseDisputeRequest, context: Context
    ) -> pb.CloseDisputeResponse:
        call = call_context(context)
        note_call(call.request_id, call.idempotency_key)

        def answer(shown: Shown) -> pb.CloseDisputeResponse:
            return pb.CloseDisputeResponse(dispute=dispute_message(*shown))

        result = await self._disputes.close(
            call.account_id,
            request.id,
            keyed=client_keyed(context, "CloseDispute", request, serialized(answer)),
        )
        return await reply(result, pb.CloseDisputeResponse, answer, context)
