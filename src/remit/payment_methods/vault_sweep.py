"""Deleting vault cards that no payment method or token references.

The REST facade stores a raw card at the vault first and then asks the core to make a payment
method or a token of it. A crash, a timeout or a refusal between the two leaves the vault
holding an encrypted card number that nothing references: card data kept for no purpose, where
PCI DSS 3.2.1 asks that stored account data be kept to a minimum. A keyed retry's extra card is
deleted on the spot (`PaymentMethodsService._handed_over`); this sweep catches the rest.

The vault cannot read the core's database and the core cannot read the vault's, so the worker
asks the vault for the tokens of its cards older than a grace period, page by page, looks each
page up in every core shard's payment methods and tokens, and deletes through the vault's API
the cards none of them holds. A card held anywhere is never deleted, and a page whose lookup
fails deletes nothing.

Why a card found unreferenced cannot become referenced before it is deleted, given the grace
period (24 hours by default, `remit.config.vault_sweep_grace_s`):
- A reference to a new vault token is made only by the request that stored the card, in the
  core's create that follows the tokenization within that one request. Every call of that
  request has a deadline of half a minute at most; no request lives anywhere near the grace
  period.
- A retry never revives an old vault token: the facade tokenizes the card again on every
  attempt, and the idempotency key records the request without its vault token, so neither a
  client's retry nor the completer can hand the old token to the core.
- A payment method made from a payment method or a token copies a vault token that its source
  already holds, and payment methods and tokens are never deleted: a card once referenced stays
  referenced and is never a candidate.
- A Stripe test id (pm_card_visa, tok_visa) names one vault card per account for good and is
  handed out again however old the card is. The vault leaves those cards out of the listing.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import Clock, SystemClock
from remit.core.errors import RemitError
from remit.payment_methods.domain import StoredVaultCard
from remit.payment_methods.repository import SqlPaymentMethodRepository

log = logging.getLogger(__name__)

PAGE_SIZE: Final = 500


class SweptVault(Protocol):
    async def cards_created_before(
        self, cutoff: datetime, *, limit: int, starting_after: str | None
    ) -> tuple[list[StoredVaultCard], bool]: ...

    async def delete_card(self, account_id: str, vault_token: str) -> bool: ...


@dataclass(frozen=True)
class SweepCounts:
    """What one sweep did. Counts only: the sweep never reports a token."""

    checked: int = 0
    referenced: int = 0
    deleted: int = 0
    failed: int = 0

    def __add__(self, other: "SweepCounts") -> "SweepCounts":
        return SweepCounts(
            self.checked + other.checked,
            self.referenced + other.referenced,
            self.deleted + other.deleted,
            self.failed + other.failed,
        )


async def vault_cards_held(shards: Sequence[AsyncEngine], vault_tokens: list[str]) -> set[str]:
    """Which of the vault cards a payment method or token holds, on any shard."""
    held: set[str] = set()
    for shard in shards:
        async with shard.begin() as db:
            held |= await SqlPaymentMethodRepository(db).vault_cards_held(vault_tokens)
    return held


class UnreferencedCardSweep:
    """Deletes the vault cards older than `grace` that no core shard references."""

    def __init__(
        self,
        vault: SweptVault,
        shards: Sequence[AsyncEngine],
        *,
        grace: timedelta,
        clock: Clock | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self._vault = vault
        self._shards = list(shards)
        self._grace = grace
        self._clock = clock or SystemClock()
        self._page_size = page_size

    async def run(self) -> SweepCounts:
        cutoff = self._clock.now() - self._grace
        total = SweepCounts()
        after: str | None = None
        while True:
            cards, has_more = await self._vault.cards_created_before(
                cutoff, limit=self._page_size, starting_after=after
            )
            total += await self._sweep_page(cards)
            if not has_more or not cards:
                break
            # The last card stays a valid place to continue from even if it was just deleted:
            # the vault keeps a deleted card's row, only its key material goes.
            after = cards[-1].vault_token
        if total.deleted or total.failed:
            log.info(
                "vault sweep: %d cards stored before the grace period checked, %d referenced, "
                "%d deleted, %d could not be deleted",
                total.checked, total.referenced, total.deleted, total.failed,
            )  # fmt: skip
        return total

    async def _sweep_page(self, cards: list[StoredVaultCard]) -> SweepCounts:
        held = await vault_cards_held(self._shards, [card.vault_token for card in cards])
        deleted = failed = 0
        for card in cards:
            if card.vault_token in held:
                continue
            try:
                if await self._vault.delete_card(card.account_id, card.vault_token):
                    deleted += 1
            except RemitError as error:
                # The vault's message names the token; the kind says enough, and the card is
                # tried again at the next sweep.
                failed += 1
                log.warning("vault sweep: a card could not be deleted (%s)", error.kind.name)
        return SweepCounts(len(cards), len(held), deleted, failed)
