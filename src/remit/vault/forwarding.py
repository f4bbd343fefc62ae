"""Where decrypted cards may go: a static allowlist of named destinations, each a client.

The allowlist comes from the vault's own configuration (`REMIT_VAULT_DESTINATIONS`), never from
a request: a caller names a destination, and anything not on the list is refused before any
card is decrypted. The destination's answer is kept as the acquirer's own message, which the
vault's `ForwardedAuthorization` mirrors field for field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

import grpc
from google.protobuf.message import Message

from remit.config import network_timeout_s
from remit.core.errors import ErrorKind, RemitError
from remit.core.logging import mask_sensitive
from remit.grpcutil.deadlines import bounded_timeout
from remit.grpcutil.errors import remit_error_from_rpc_error
from remit.grpcutil.internal_auth import InternalAccess, internal_channel
from remit.grpcutil.unstarted import refused_unstarted, unstarted_overload_refusal
from remit.vault.domain import OutboundAuthorization
from remit_api.acquirer.v1 import acquirer_pb2, acquirer_pb2_grpc
from remit_api.common.v1 import common_pb2
from remit_api.vault.v1 import vault_pb2

DESTINATIONS_ENV: Final = "REMIT_VAULT_DESTINATIONS"


class Destination(Protocol):
    async def authorize(self, outbound: OutboundAuthorization) -> vault_pb2.ForwardedAuthorization:
        """Send the authorization; raise `RemitError` when no answer came back, and
        `UnstartedRefusalError` only when the destination refused it before carrying it out
        (nothing was sent): the vault then puts back the CVC it took for it."""
        ...

    async def close(self) -> None: ...


# Only the fields both messages define: either side may grow fields first.
_MIRRORED_FIELDS: Final = tuple(
    field.name
    for field in vault_pb2.ForwardedAuthorization.DESCRIPTOR.fields
    if field.name in acquirer_pb2.AuthorizationResult.DESCRIPTOR.fields_by_name
)
# Of those, the ones whose absence means something (`optional`): an acquirer that does not
# report its fee must not look like one that withheld none.
_PRESENCE_FIELDS: Final = frozenset(
    name
    for name in _MIRRORED_FIELDS
    if acquirer_pb2.AuthorizationResult.DESCRIPTOR.fields_by_name[name].has_presence
)


def mirror_result(result: acquirer_pb2.AuthorizationResult) -> vault_pb2.ForwardedAuthorization:
    """Copy the acquirer's answer into the vault's message of the same shape, field by field;
    a field the acquirer left unset stays unset, and its message is masked."""
    mirrored = vault_pb2.ForwardedAuthorization()
    # Asked by a name read from the descriptor, which the generated stubs' literals cannot know.
    source: Message = result
    for name in _MIRRORED_FIELDS:
        if name in _PRESENCE_FIELDS and not source.HasField(name):
            continue
        setattr(mirrored, name, getattr(result, name))
    # The acquirer's words, which may quote the card: recorded for replays (`forwards.result`)
    # and stored by payments as a charge's failure_message, each masked.
    mirrored.message = mask_sensitive(mirrored.message)
    return mirrored


def authorize_request(outbound: OutboundAuthorization) -> acquirer_pb2.AuthorizeRequest:
    request = acquirer_pb2.AuthorizeRequest(
        reference=outbound.reference,
        card_number=outbound.card_number.reveal(),
        exp_month=outbound.exp_month,
        exp_year=outbound.exp_year,
        amount=outbound.amount_minor,
        currency=outbound.currency,
        capture=outbound.capture,
        merchant_id=outbound.merchant_id,
        three_d_secure_authenticated=outbound.three_d_secure_authenticated,
        off_session=outbound.stored_credential.off_session,
        setup_off_session=outbound.stored_credential.setup_off_session,
        initial_network_transaction_id=outbound.stored_credential.initial_network_transaction_id
        or "",
    )
    if outbound.cvc is not None:
        request.cvc = outbound.cvc.reveal()
    if outbound.billing_address:
        request.billing_address.CopyFrom(common_pb2.Address(**outbound.billing_address))
    return request


@dataclass
class GrpcAcquirerDestination:
    """An `AcquirerService` reached over gRPC, on one channel and stub made at the first call."""

    target: str
    # How to reach it: a destination is a remit AcquirerService, which checks the internal
    # token (and mutual TLS when configured).
    access: InternalAccess = field(default_factory=InternalAccess)
    _channel: grpc.aio.Channel | None = None
    _cached_stub: acquirer_pb2_grpc.AcquirerServiceAsyncStub | None = None

    def _stub(self) -> acquirer_pb2_grpc.AcquirerServiceAsyncStub:
        if self._cached_stub is None:
            self._channel = internal_channel(self.target, self.access)
            self._cached_stub = acquirer_pb2_grpc.AcquirerServiceStub(self._channel)
        return self._cached_stub

    async def authorize(self, outbound: OutboundAuthorization) -> vault_pb2.ForwardedAuthorization:
        try:
            # Bounded by the vault's own caller's deadline too: an answer the acquirer gives
            # after the core gave up would be lost, and this authorization's CVC with it.
            reply = await self._stub().Authorize(
                authorize_request(outbound), timeout=bounded_timeout(network_timeout_s())
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in _RETRYABLE:
                raise RemitError(
                    message="The acquirer did not answer the authorization; retry with the "
                    "same reference.",
                    kind=ErrorKind.UNAVAILABLE,
                    error_type="api_error",
                    should_retry=True,
                ) from None
            if refused_unstarted(error):
                # The acquirer turned it away unseen: passed on as such, the core knows the
                # authorization was not sent and need not look it up.
                raise unstarted_overload_refusal("card network") from None
            raise remit_error_from_rpc_error(error) from None
        return mirror_result(reply.result)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


_RETRYABLE: Final = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def parse_allowlist(text: str) -> dict[str, str]:
    """`acquirer=127.0.0.1:7423,backup=10.0.0.2:7423` -> {name: host:port}."""
    allowlist: dict[str, str] = {}
    for entry in text.split(","):
        entry = entry.strip()
        if not entry:
            continue
        name, sep, target = entry.partition("=")
        if not sep or not name.strip() or ":" not in target:
            raise ValueError(f"{DESTINATIONS_ENV} entries look like name=host:port, got {entry!r}")
        allowlist[name.strip()] = target.strip()
    return allowlist


def grpc_destinations(
    allowlist: Mapping[str, str], access: InternalAccess | None = None
) -> dict[str, Destination]:
    reach = access or InternalAccess()
    return {name: GrpcAcquirerDestination(target, reach) for name, target in allowlist.items()}
