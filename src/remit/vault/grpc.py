"""VaultService over gRPC: protobuf in, use case, protobuf out. Nothing else.

Card numbers and CVCs are wrapped in `Secret` the moment they leave the request message.
"""

from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict, ParseDict

from remit.core.errors import invalid
from remit.core.secrets import Secret
from remit.core.told_text import unprintable_character
from remit.grpcutil.protoconv import filter_bound, request_datetime, timestamp
from remit.grpcutil.server import ServiceRegistration
from remit.vault.cards import Brand, Funding
from remit.vault.crypto import FingerprintScope
from remit.vault.domain import (
    MAX_TOLD_LENGTH,
    AuditAction,
    AuditEvent,
    AuditFilter,
    CardSummary,
    ForwardRequest,
    ListedCard,
    StoredCredential,
)
from remit.vault.fingerprint_checks import FingerprintCheck
from remit.vault.service import NewCardDetails, VaultService
from remit_api.common.v1 import common_pb2
from remit_api.vault.v1 import vault_pb2, vault_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]

_BRANDS = {brand: common_pb2.CardBrand.Value(f"CARD_BRAND_{brand.name}") for brand in Brand}
_FUNDING = {
    funding: common_pb2.CardFunding.Value(f"CARD_FUNDING_{funding.name}") for funding in Funding
}
_ACTIONS = {
    action: vault_pb2.AuditAction.Value(f"AUDIT_ACTION_{action.name}") for action in AuditAction
}
_ACTIONS_FROM_PROTO = {number: action for action, number in _ACTIONS.items()}
_FINGERPRINT_CHECKS = {
    check: vault_pb2.FingerprintCheck.Value(f"FINGERPRINT_CHECK_{check.name}")
    for check in FingerprintCheck
}
DEFAULT_CARD_LISTING = 100


def card_details_message(summary: CardSummary, scope: FingerprintScope) -> vault_pb2.CardDetails:
    return vault_pb2.CardDetails(
        brand=_BRANDS[summary.brand],
        last4=summary.last4,
        exp_month=summary.exp_month,
        exp_year=summary.exp_year,
        fingerprint=summary.fingerprint,
        funding=_FUNDING[summary.funding],
        country=summary.country,
        account_fingerprint=scope is FingerprintScope.ACCOUNT,
    )


def billing_details_dict(message: common_pb2.BillingDetails) -> dict[str, object]:
    return MessageToDict(message, preserving_proto_field_name=True)


def billing_details_message(details: dict[str, object]) -> common_pb2.BillingDetails:
    return ParseDict(details, common_pb2.BillingDetails(), ignore_unknown_fields=True)


def audit_event_message(event: AuditEvent) -> vault_pb2.AuditEvent:
    return vault_pb2.AuditEvent(
        id=event.id,
        created=timestamp(event.created_at),
        action=_ACTIONS[event.action],
        requester=event.requester,
        purpose=event.purpose,
        vault_token=event.token,
        account_id=event.account_id,
        destination=event.destination,
        reference=event.reference,
        succeeded=event.succeeded,
        key_version=event.key_version,
    )


def _told(value: str, field: str) -> str:
    """`value`, which the caller names for the audit log to keep as told (who asks, and why):
    refused when it is longer than `MAX_TOLD_LENGTH` characters, or holds a control character
    or a line break, which would let one recorded event print as several, or act on the
    terminal showing it."""
    if len(value) > MAX_TOLD_LENGTH:
        raise invalid(
            f"{field} must be at most {MAX_TOLD_LENGTH} characters (got {len(value)}).", field
        )
    if (char := unprintable_character(value)) is not None:
        raise invalid(
            f"{field} must not contain control characters or line breaks (found {char}).", field
        )
    return value


def _requester(request: Any) -> str:
    if not request.requester:
        raise invalid("Say who is asking: requester is required.", "requester")
    return _told(str(request.requester), "requester")


def _account(request: Any) -> str:
    if not request.account_id:
        raise invalid("account_id is required.", "account_id")
    return str(request.account_id)


class VaultServicer(vault_pb2_grpc.VaultServiceServicer):
    def __init__(self, service: VaultService) -> None:
        self._service = service

    async def TokenizeCard(
        self, request: vault_pb2.TokenizeCardRequest, context: Context
    ) -> vault_pb2.TokenizeCardResponse:
        number = Secret(request.number)
        cvc = Secret(request.cvc) if request.HasField("cvc") else None
        tokenized = await self._service.tokenize(
            _account(request),
            number,
            request.exp_month,
            request.exp_year,
            cvc,
            billing_details=billing_details_dict(request.billing_details),
            requester=_requester(request),
            livemode=request.livemode,
        )
        return vault_pb2.TokenizeCardResponse(
            vault_token=tokenized.token,
            card=card_details_message(tokenized.summary, tokenized.fingerprint_scope),
        )

    async def ResolveTestCard(
        self, request: vault_pb2.ResolveTestCardRequest, context: Context
    ) -> vault_pb2.ResolveTestCardResponse:
        resolved = await self._service.resolve_test_card(
            _account(request), request.test_id, requester=_requester(request)
        )
        return vault_pb2.ResolveTestCardResponse(
            vault_token=resolved.token,
            card=card_details_message(resolved.summary, resolved.fingerprint_scope),
        )

    async def GetCardDetails(
        self, request: vault_pb2.GetCardDetailsRequest, context: Context
    ) -> vault_pb2.GetCardDetailsResponse:
        details = await self._service.card_details(
            _account(request), request.vault_token, requester=_requester(request)
        )
        return vault_pb2.GetCardDetailsResponse(
            card=card_details_message(details.summary, details.fingerprint_scope),
            cvc_present=details.cvc_present,
            billing_details=billing_details_message(dict(details.billing_details)),
            test_id=details.test_id or "",
        )

    async def ForwardAuthorization(
        self, request: vault_pb2.ForwardAuthorizationRequest, context: Context
    ) -> vault_pb2.ForwardAuthorizationResponse:
        address = None
        if request.HasField("billing_address"):
            address = {
                str(key): str(value)
                for key, value in MessageToDict(
                    request.billing_address, preserving_proto_field_name=True
                ).items()
            }
        forwarded = await self._service.forward(
            _account(request),
            request.vault_token,
            ForwardRequest(
                destination=request.destination,
                amount_minor=request.amount,
                currency=request.currency,
                reference=request.reference,
                capture=request.capture,
                purpose=_told(request.purpose, "purpose"),
                requester=_requester(request),
                billing_address=address,
                three_d_secure_authenticated=request.three_d_secure_authenticated,
                stored_credential=StoredCredential(
                    off_session=request.off_session,
                    setup_off_session=request.setup_off_session,
                    initial_network_transaction_id=request.initial_network_transaction_id or None,
                ),
            ),
        )
        return vault_pb2.ForwardAuthorizationResponse(
            result=forwarded.result, replayed=forwarded.replayed
        )

    async def DeleteCard(
        self, request: vault_pb2.DeleteCardRequest, context: Context
    ) -> vault_pb2.DeleteCardResponse:
        deleted = await self._service.delete_card(
            _account(request), request.vault_token, requester=_requester(request)
        )
        return vault_pb2.DeleteCardResponse(deleted=deleted)

    async def UpdateCardDetails(
        self, request: vault_pb2.UpdateCardDetailsRequest, context: Context
    ) -> vault_pb2.UpdateCardDetailsResponse:
        updated = await self._service.update_card_details(
            _account(request),
            request.vault_token,
            _new_card_details(request),
            requester=_requester(request),
        )
        return vault_pb2.UpdateCardDetailsResponse(
            card=card_details_message(updated.summary, updated.fingerprint_scope),
            billing_details=billing_details_message(dict(updated.billing_details)),
            changed=updated.changed,
        )

    async def CheckCardFingerprints(
        self, request: vault_pb2.CheckCardFingerprintsRequest, context: Context
    ) -> vault_pb2.CheckCardFingerprintsResponse:
        checked = await self._service.check_fingerprints(
            _account(request),
            [(card.vault_token, card.fingerprint) for card in request.cards],
            requester=_requester(request),
        )
        return vault_pb2.CheckCardFingerprintsResponse(
            cards=[
                vault_pb2.CheckedFingerprint(
                    vault_token=card.vault_token,
                    check=_FINGERPRINT_CHECKS[card.check],
                    fingerprint=card.fingerprint,
                )
                for card in checked
            ]
        )

    async def ListCardsCreatedBefore(
        self, request: vault_pb2.ListCardsCreatedBeforeRequest, context: Context
    ) -> vault_pb2.ListCardsCreatedBeforeResponse:
        if not request.HasField("created_before"):
            raise invalid("created_before is required.", "created_before")
        cutoff = request_datetime(request.created_before, "created_before")
        listing = await self._service.list_cards_created_before(
            cutoff,
            limit=request.limit or DEFAULT_CARD_LISTING,
            starting_after=request.starting_after if request.HasField("starting_after") else None,
            requester=_requester(request),
        )
        last = listing.scanned_through
        return vault_pb2.ListCardsCreatedBeforeResponse(
            data=[_listed_card(card) for card in listing.cards],
            has_more=listing.has_more,
            scanned_through=None if last is None else _listed_card(last),
        )

    async def RotateKey(
        self, request: vault_pb2.RotateKeyRequest, context: Context
    ) -> vault_pb2.RotateKeyResponse:
        version = await self._service.rotate_key(requester=_requester(request))
        return vault_pb2.RotateKeyResponse(key_version=version)

    async def RewrapDataKeys(
        self, request: vault_pb2.RewrapDataKeysRequest, context: Context
    ) -> vault_pb2.RewrapDataKeysResponse:
        progress = await self._service.rewrap_batch(
            batch_size=request.batch_size, requester=_requester(request)
        )
        return vault_pb2.RewrapDataKeysResponse(
            rewrapped=progress.rewrapped,
            remaining=progress.remaining,
            key_version=progress.key_version,
        )

    async def ResealCards(
        self, request: vault_pb2.ResealCardsRequest, context: Context
    ) -> vault_pb2.ResealCardsResponse:
        progress = await self._service.reseal_batch(
            batch_size=request.batch_size, requester=_requester(request)
        )
        return vault_pb2.ResealCardsResponse(
            resealed=progress.resealed, remaining=progress.remaining
        )

    async def SetMinimumDecryptionVersion(
        self, request: vault_pb2.SetMinimumDecryptionVersionRequest, context: Context
    ) -> vault_pb2.SetMinimumDecryptionVersionResponse:
        minimum = await self._service.set_minimum_decryption_version(
            request.minimum_version, requester=_requester(request)
        )
        return vault_pb2.SetMinimumDecryptionVersionResponse(minimum_version=minimum)

    async def RemoveKeyVersion(
        self, request: vault_pb2.RemoveKeyVersionRequest, context: Context
    ) -> vault_pb2.RemoveKeyVersionResponse:
        removed = await self._service.remove_key_version(
            request.version, requester=_requester(request)
        )
        return vault_pb2.RemoveKeyVersionResponse(version=removed)

    async def DeclareKeyVersionLost(
        self, request: vault_pb2.DeclareKeyVersionLostRequest, context: Context
    ) -> vault_pb2.DeclareKeyVersionLostResponse:
        answer = await self._service.declare_key_version_lost(
            request.version, requester=_requester(request)
        )
        return vault_pb2.DeclareKeyVersionLostResponse(
            version=answer.declared.version,
            declared_by=answer.declared.declared_by,
            declared_at=timestamp(answer.declared.declared_at),
            newly_declared=answer.newly_declared,
            cards=answer.cards,
        )

    async def GetKeyStatus(
        self, request: vault_pb2.GetKeyStatusRequest, context: Context
    ) -> vault_pb2.GetKeyStatusResponse:
        status = await self._service.key_status()
        return vault_pb2.GetKeyStatusResponse(
            current_version=status.current_version,
            minimum_decryption_version=status.minimum_decryption_version,
            versions=[
                vault_pb2.KeyVersionStatus(
                    version=entry.version,
                    created=timestamp(entry.created_at),
                    data_key_count=entry.data_key_count,
                )
                for entry in status.versions
            ],
            token_bound_cards=status.cards_to_reseal,
        )

    async def ListAuditEvents(
        self, request: vault_pb2.ListAuditEventsRequest, context: Context
    ) -> vault_pb2.ListAuditEventsResponse:
        if request.HasField("action") and request.action not in _ACTIONS_FROM_PROTO:
            raise invalid("action must be a known audit action.", "action")

        def optional(name: str) -> Any:
            return getattr(request, name) if request.HasField(name) else None  # type: ignore[arg-type]

        events, has_more = await self._service.list_audit_events(
            AuditFilter(
                limit=request.limit or 10,
                starting_after=optional("starting_after"),
                ending_before=optional("ending_before"),
                account_id=optional("account_id"),
                token=optional("vault_token"),
                requester=optional("requester"),
                action=_ACTIONS_FROM_PROTO[request.action] if request.HasField("action") else None,
                created_gte=filter_bound(request.created, "gte"),
                created_gt=filter_bound(request.created, "gt"),
                created_lte=filter_bound(request.created, "lte"),
                created_lt=filter_bound(request.created, "lt"),
            )
        )
        return vault_pb2.ListAuditEventsResponse(
            data=[audit_event_message(event) for event in events], has_more=has_more
        )


def vault_registration(service: VaultService) -> ServiceRegistration:
    servicer = VaultServicer(service)
    return ServiceRegistration(
        full_name=vault_pb2.DESCRIPTOR.services_by_name["VaultService"].full_name,
        add_to_server=lambda server: vault_pb2_grpc.add_VaultServiceServicer_to_server(
            servicer, server
        ),
    )


def _listed_card(card: ListedCard) -> vault_pb2.ListedCard:
    return vault_pb2.ListedCard(
        vault_token=card.token, account_id=card.account_id, created=timestamp(card.created_at)
    )


def _new_card_details(request: vault_pb2.UpdateCardDetailsRequest) -> NewCardDetails:
    """The fields the request sets; an expiry is its month and year together."""
    has_month, has_year = request.HasField("exp_month"), request.HasField("exp_year")
    if has_month != has_year:
        missing = "exp_year" if has_month else "exp_month"
        raise invalid("exp_month and exp_year are given together.", missing)
    expiry = (request.exp_month, request.exp_year) if has_month else None
    billing = (
        billing_details_dict(request.billing_details)
        if request.HasField("billing_details")
        else None
    )
    if expiry is None and billing is None:
        raise invalid("Give the card's new expiry, billing details or both.", "exp_month")
    return NewCardDetails(expiry=expiry, billing_details=billing)
