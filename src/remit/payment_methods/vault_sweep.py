"""Deleting vault cards that no payment method or token references.

The REST facade stores a raw card at the vault first and then asks the core to make a payment
method or a token of it. A crash, a timeout or a refusal between the two leaves the vault
holding an encrypted card number that nothing references: card data kept for no purpose, where
PCI DSS 3.2.1 asks that stored account data be kept to a minimum. A keyed retry's extra card is
deleted on the spot (`PaymentMethodsService._handed_over`); this sweep catches the rest.

The vault cannot read the core's database and the core cannot read the vault's, so the worker
asks the vault for the tokens of its cards older than a grace period, page by page, looks each
page up in the core's payment methods and tokens, and deletes through the vault's API the cards
neither holds. A card held is never deleted, and a page whose lookup fails deletes nothing.

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

Where a run starts. For the same reasons, a card the sweep has finished with never needs looking
at again: it was referenced and stays so, or it was deleted. The core's database keeps the
(created_at, token) of the last card of the last page whose every card was found referenced,
deleted or already gone (`vault_sweep_watermarks`), and each run lists only the cards after it,
so a run costs what the cards that came of age since the last run cost, not what every card
ever stored costs. A page that is not finished (a deletion failed, a brake below stopped the
run) leaves the mark where it was, and the next run takes that page again. A mark the vault does
not know (a vault restored from before it, or a vault that is not the one the mark came from)
is dropped for a listing from the oldest card, logged.

The vault leaves out of its listing the cards whose binding to their account it cannot vouch
for, and reads a bounded number of cards per page, so a page may be short or empty with more to
come; it names the last card it read (`VaultCardPage.resume_after`), and the mark and the next
page go past it, so a long run of cards left out costs a few pages, not a stalled sweep.

Brakes. Deleting is irreversible, and the core's database is the only evidence that a card is
in use: a worker given the wrong one (an empty or new database, a stale restore, a staging
worker pointed at the production vault) would find every card unreferenced and shred them all.
Orphans come only from a crash or a timeout between tokenization and the core's create (or an
on-the-spot deletion that failed), so they are a small share of any run of cards; a sweep that
sees otherwise takes it that the database is not the one that references these cards, and
deletes nothing more:
- a core database with no payment method and no token at all, while the vault lists old cards,
  cannot be the one that references them: the run is refused (checked at the first page that
  lists a card, which need not be the first page);
- a page of at least `MIN_JUDGED_PAGE` cards of which more than half are unreferenced stops the
  run before any of that page is deleted (a smaller page, a quiet hour's cards, says too little),
  and so do the run's cards so far with the page, once they are that many (the vault's pages may
  be short, and a run of short pages would otherwise never be judged);
  after a real burst of orphans that a person has checked,
  REMIT_VAULT_SWEEP_MAX_UNREFERENCED_SHARE (`remit.config.vault_sweep_max_unreferenced_share`)
  raises the share, up to 1, which lifts the rule;
- one run deletes at most `remit.config.vault_sweep_max_deletions` cards
  (REMIT_VAULT_SWEEP_MAX_DELETIONS, 1000 by default): whatever the first two rules let through
  goes at that pace at most, each run logging an error, until a person has looked.
Each logs an error naming the settings to check; the mark stays before the page it stopped on.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.config import (
    DEFAULT_VAULT_SWEEP_MAX_DELETIONS,
    DEFAULT_VAULT_SWEEP_MAX_UNREFERENCED_SHARE,
)
from remit.core.clock import Clock, SystemClock
from remit.core.errors import ErrorKind, RemitError
from remit.payment_methods.domain import StoredVaultCard, VaultCardPage
from remit.payment_methods.repository import SqlPaymentMethodRepository

log = logging.getLogger(__name__)

PAGE_SIZE: Final = 500
# The smallest page whose share of unreferenced cards is taken as evidence about the database.
MIN_JUDGED_PAGE: Final = 20
# The sweep's row in `vault_sweep_watermarks`.
WATERMARK: Final = "unreferenced-vault-cards"


class SweptVault(Protocol):
    async def cards_created_before(
        self, cutoff: datetime, *, limit: int, starting_after: str | None
    ) -> VaultCardPage: ...

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


@dataclass(frozen=True)
class _PageSwept:
    counts: SweepCounts
    # Every card of the page referenced, deleted or already gone: the mark may pass it.
    finished: bool


def _looks_like_another_database(page_size: int, unreferenced: int, max_share: float) -> bool:
    return page_size >= MIN_JUDGED_PAGE and unreferenced > max_share * page_size


class UnreferencedCardSweep:
    """Deletes the vault cards older than `grace` that the core's database does not reference."""

    def __init__(
        self,
        vault: SweptVault,
        core: AsyncEngine,
        *,
        grace: timedelta,
        max_deletions: int = DEFAULT_VAULT_SWEEP_MAX_DELETIONS,
        max_unreferenced_share: float = DEFAULT_VAULT_SWEEP_MAX_UNREFERENCED_SHARE,
        clock: Clock | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self._vault = vault
        self._core = core
        self._grace = grace
        self._max_deletions = max_deletions
        self._max_unreferenced_share = max_unreferenced_share
        self._clock = clock or SystemClock()
        self._page_size = page_size

    async def run(self) -> SweepCounts:
        cutoff = self._clock.now() - self._grace
        listing = await self._first_page(cutoff)
        total = SweepCounts()
        # Checked on the first page that lists a card, not only on the first page: the vault
        # may answer pages with no card listed (all left out) and more to come.
        core_checked = False
        while True:
            if listing.cards:
                if not core_checked:
                    core_checked = True
                    if not await self._core_holds_any_card():
                        log.error(
                            "vault sweep refused: the vault lists cards older than the grace "
                            "period but this core database holds no payment method or token "
                            "at all, so it cannot be the one that references them; nothing is "
                            "deleted. Check the worker's DATABASE_URL and REMIT_VAULT_HOST."
                        )
                        return total
                page = await self._sweep_page(
                    listing.cards, self._max_deletions - total.deleted, total
                )
                total += page.counts
                if not page.finished:
                    break
            # The page's last card read stays a valid place to continue from even if it was
            # just deleted: the vault keeps a deleted card's row, only its key material goes.
            resume_after = listing.resume_after
            if resume_after is None:
                break
            await self._advance_watermark(resume_after)
            if not listing.has_more:
                break
            listing = await self._list(cutoff, resume_after.vault_token)
        if total.deleted or total.failed:
            log.info(
                "vault sweep: %d cards stored before the grace period checked, %d referenced, "
                "%d deleted, %d could not be deleted",
                total.checked, total.referenced, total.deleted, total.failed,
            )  # fmt: skip
        return total

    async def _first_page(self, cutoff: datetime) -> VaultCardPage:
        """The first page after the mark, or from the oldest card if the vault does not know
        the mark's card."""
        async with self._core.begin() as db:
            watermark = await SqlPaymentMethodRepository(db).vault_sweep_watermark(WATERMARK)
        if watermark is None:
            return await self._list(cutoff, None)
        try:
            return await self._list(cutoff, watermark[1])
        except RemitError as error:
            if error.kind is not ErrorKind.NOT_FOUND:
                raise
        log.warning(
            "vault sweep: the vault does not know the card the previous runs stopped after; "
            "listing its cards from the oldest"
        )
        return await self._list(cutoff, None)

    async def _list(self, cutoff: datetime, after: str | None) -> VaultCardPage:
        return await self._vault.cards_created_before(
            cutoff, limit=self._page_size, starting_after=after
        )

    async def _core_holds_any_card(self) -> bool:
        async with self._core.begin() as db:
            return await SqlPaymentMethodRepository(db).holds_any_vault_card()

    async def _advance_watermark(self, card: StoredVaultCard) -> None:
        async with self._core.begin() as db:
            await SqlPaymentMethodRepository(db).set_vault_sweep_watermark(
                WATERMARK, card.created_at, card.vault_token
            )

    async def _sweep_page(
        self, cards: list[StoredVaultCard], deletions_left: int, before: SweepCounts
    ) -> _PageSwept:
        async with self._core.begin() as db:
            held = await SqlPaymentMethodRepository(db).vault_cards_held(
                [card.vault_token for card in cards]
            )
        unreferenced = [card for card in cards if card.vault_token not in held]
        looked_up = SweepCounts(checked=len(cards), referenced=len(held))
        # Judged on the page, and on the run so far with the page: the vault's pages may be
        # short (cards it leaves out), and pages all under MIN_JUDGED_PAGE would escape the
        # rule page by page.
        run_checked = before.checked + len(cards)
        run_unreferenced = before.checked - before.referenced + len(unreferenced)
        for where, size, count in (
            ("one page", len(cards), len(unreferenced)),
            ("this run", run_checked, run_unreferenced),
        ):
            if _looks_like_another_database(size, count, self._max_unreferenced_share):
                log.error(
                    "vault sweep stopped: %d of %d cards on %s are referenced by no payment "
                    "method or token in this core database; orphans are rare, so it is likely "
                    "not the database that references the vault's cards. Nothing more is "
                    "deleted; check the worker's DATABASE_URL and REMIT_VAULT_HOST. If they are "
                    "right and these are real orphans, REMIT_VAULT_SWEEP_MAX_UNREFERENCED_SHARE=1 "
                    "lets the sweep through.",
                    count, size, where,
                )  # fmt: skip
                return _PageSwept(looked_up, finished=False)
        allowed = unreferenced[: max(deletions_left, 0)]
        deleted, failed = await self._delete(allowed)
        capped = len(allowed) < len(unreferenced)
        if capped:
            log.error(
                "vault sweep stopped: one run deletes at most %d cards "
                "(REMIT_VAULT_SWEEP_MAX_DELETIONS) and more unreferenced cards remain. Check that "
                "the worker's DATABASE_URL is the core database that references the vault's "
                "cards; the next run deletes at most as many again.",
                self._max_deletions,
            )  # fmt: skip
        finished = failed == 0 and not capped
        return _PageSwept(looked_up + SweepCounts(deleted=deleted, failed=failed), finished)

    async def _delete(self, cards: list[StoredVaultCard]) -> tuple[int, int]:
        """Delete the cards at the vault; how many were deleted and how many could not be."""
        deleted = failed = 0
        for card in cards:
            try:
                if await self._vault.delete_card(card.account_id, card.vault_token):
                    deleted += 1
            except RemitError as error:
                # The vault's message names the token; the kind says enough, and the card is
                # tried again at the next sweep.
                failed += 1
                log.warning("vault sweep: a card could not be deleted (%s)", error.kind.name)
        return deleted, failed
