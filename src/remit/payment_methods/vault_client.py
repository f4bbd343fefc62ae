"""The core's window on the vault: test-card resolution, a card's public details, a saved
card's new expiry and billing details, the tokens of old cards, and deleting a card nothing uses.

The core never asks for, receives or could receive a card number through this client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

import grpc

from remit.core.errors import ErrorKind, RemitError
from remit.core.jsonview import enum_wire_values
from remit.grpcutil.errors import answer_of, remit_error_from_rpc_error
from remit.grpcutil.protoconv import from_timestamp, timestamp
from remit.payment_methods.billing_message import billing_details_message
from remit.payment_methods.domain import CardSummary, StoredVaultCard, VaultCard, VaultCardPage
from remit_api.common.v1 import common_pb2
from remit_api.vault.v1 import vault_pb2, vault_pb2_grpc

REQUESTER: Final = "core"
# The vault's code for a refused update of a test id's card (`remit.vault.service`).
TEST_CARD_SHARED: Final = "vault_test_card_shared"
TIMEOUT_S: Final = 10.0
_BRANDS: Final = enum_wire_values(common_pb2.CardBrand.DESCRIPTOR)
_FUNDING: Final = enum_wire_values(common_pb2.CardFunding.DESCRIPTOR)
# The most cards one fingerprint check takes (`remit.vault.service.MAX_FINGERPRINT_CHECKS`).
MAX_FINGERPRINT_CHECKS: Final = 500
_FINGERPRINT_CHECKS: Final = enum_wire_values(vault_pb2.FingerprintCheck.DESCRIPTOR)


@dataclass(frozen=True)
class CheckedFingerprint:
    """What a fingerprint the core holds is to its card (vault.v1.CheckedFingerprint):
    `check` is "current", "replaced", "pending" or "unknown" (None for an answer this version
    does not know); `fingerprint`, the card's in its account, for the first two."""

    vault_token: str
    check: str | None
    fingerprint: str | None


class FingerprintVault(Protocol):
    async def check_fingerprints(
        self, account_id: str, held: Sequence[tuple[str, str]]
    ) -> list[CheckedFingerprint]:
        """What each (vault token, fingerprint held) of the account's is to its card."""
        ...


class CardVault(Protocol):
    async def resolve_test_card(self, account_id: str, test_id: str) -> VaultCard: ...
    async def card_details(self, account_id: str, vault_token: str) -> VaultCard: ...

    def forget_card(self, account_id: str, vault_token: str) -> None:
        """The vault refused to open this card: drop whatever is remembered about it."""
        ...

    async def delete_card(self, account_id: str, vault_token: str) -> bool:
        """Destroy the card at the vault; False if it was deleted already."""
        ...

    async def update_card_details(
        self,
        account_id: str,
        vault_token: str,
        *,
        expiry: tuple[int, int] | None,
        billing_details: Mapping[str, object] | None,
    ) -> VaultCard:
        """Set the card's expiry (month, four-digit year) and/or billing details (whole) at
        the vault, which sends them with the card's authorizations; the same values again
        change nothing. Refused (FAILED_PRECONDITION, `TEST_CARD_SHARED`) for a test id's
        card, which every payment method made of that test id shares."""
        ...


def summary_from_message(card: vault_pb2.CardDetails) -> CardSummary:
    return CardSummary(
        brand=_BRANDS.get(card.brand) or "unknown",
        last4=card.last4,
        exp_month=card.exp_month,
        exp_year=card.exp_year,
        fingerprint=card.fingerprint,
        funding=_FUNDING.get(card.funding) or "unknown",
        country=card.country or None,
        account_fingerprint=card.account_fingerprint,
    )


@dataclass
class GrpcCardVault:
    channel: grpc.aio.Channel
    # Who the vault's audit log records as asking.
    requester: str = REQUESTER

    def __post_init__(self) -> None:
        # Made once: a stub builds a callable per method of the service when constructed.
        self._stub: vault_pb2_grpc.VaultServiceAsyncStub = vault_pb2_grpc.VaultServiceStub(
            self.channel
        )

    def forget_card(self, account_id: str, vault_token: str) -> None:
        return None  # every question goes to the vault: nothing is remembered

    async def resolve_test_card(self, account_id: str, test_id: str) -> VaultCard:
        reply = await answer_of(
            self._stub.ResolveTestCard(
                vault_pb2.ResolveTestCardRequest(
                    account_id=account_id, test_id=test_id, requester=self.requester
                ),
                timeout=TIMEOUT_S,
            )
        )
        return VaultCard(reply.vault_token, summary_from_message(reply.card), test_id=test_id)

    async def card_details(self, account_id: str, vault_token: str) -> VaultCard:
        reply = await answer_of(
            self._stub.GetCardDetails(
                vault_pb2.GetCardDetailsRequest(
                    account_id=account_id, vault_token=vault_token, requester=self.requester
                ),
                timeout=TIMEOUT_S,
            )
        )
        return VaultCard(vault_token, summary_from_message(reply.card), reply.test_id or None)

    async def delete_card(self, account_id: str, vault_token: str) -> bool:
        reply = await answer_of(
            self._stub.DeleteCard(
                vault_pb2.DeleteCardRequest(
                    account_id=account_id, vault_token=vault_token, requester=self.requester
                ),
                timeout=TIMEOUT_S,
            )
        )
        return reply.deleted

    async def update_card_details(
        self,
        account_id: str,
        vault_token: str,
        *,
        expiry: tuple[int, int] | None,
        billing_details: Mapping[str, object] | None,
    ) -> VaultCard:
        request = vault_pb2.UpdateCardDetailsRequest(
            account_id=account_id, vault_token=vault_token, requester=self.requester
        )
        if expiry is not None:
            request.exp_month, request.exp_year = expiry
        if billing_details is not None:
            request.billing_details.CopyFrom(billing_details_message(billing_details))
        try:
            reply = await self._stub.UpdateCardDetails(request, timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
                raise update_unanswered() from None
            raise remit_error_from_rpc_error(error) from None
        return VaultCard(vault_token, summary_from_message(reply.card))

    async def cards_created_before(
        self, cutoff: datetime, *, limit: int, starting_after: str | None
    ) -> VaultCardPage:
        """One page, oldest first, of the vault's cards stored before `cutoff` (test ids'
        cards left out), whether more follow, and where the next page starts."""
        request = vault_pb2.ListCardsCreatedBeforeRequest(
            created_before=timestamp(cutoff), limit=limit, requester=self.requester
        )
        if starting_after is not None:
            request.starting_after = starting_after
        reply = await answer_of(self._stub.ListCardsCreatedBefore(request, timeout=TIMEOUT_S))
        return VaultCardPage(
            [_stored_vault_card(card) for card in reply.data],
            reply.has_more,
            _stored_vault_card(reply.scanned_through)
            if reply.HasField("scanned_through")
            else None,
        )

    async def check_fingerprints(
        self, account_id: str, held: Sequence[tuple[str, str]]
    ) -> list[CheckedFingerprint]:
        """What each (vault token, fingerprint held) of the account's is to its card, in the
        order given (vault.v1.CheckCardFingerprints): at most `MAX_FINGERPRINT_CHECKS`."""
        reply = await answer_of(
            self._stub.CheckCardFingerprints(
                vault_pb2.CheckCardFingerprintsRequest(
                    account_id=account_id,
                    cards=[
                        vault_pb2.HeldFingerprint(vault_token=token, fingerprint=fingerprint)
                        for token, fingerprint in held
                    ],
                    requester=self.requester,
                ),
                timeout=TIMEOUT_S,
            )
        )
        return [
            CheckedFingerprint(
                card.vault_token, _FINGERPRINT_CHECKS.get(card.check), card.fingerprint or None
            )
            for card in reply.cards
        ]


def _stored_vault_card(card: vault_pb2.ListedCard) -> StoredVaultCard:
    return StoredVaultCard(card.vault_token, card.account_id, from_timestamp(card.created))


def update_unanswered() -> RemitError:
    """The vault's update of a card's details not answered in time: it may or may not have
    been stored. Retryable, not a fault of remit's: the vault takes values it already holds as
    done, so the same update again settles it either way (a 500 would tell the merchant
    nothing about retrying, and gRPC reads a lapsed deadline as no kind of remit's)."""
    return RemitError(
        message="The vault did not answer in time; please retry the update.",
        kind=ErrorKind.UNAVAILABLE,
        error_type="api_error",
        should_retry=True,
    )
