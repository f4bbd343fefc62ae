"""The vault's answer for a test id (`pm_card_visa`, `tok_mastercard`, ...), kept for a while.

A test id names one card per account for good: the vault tokenizes its number once and gives
every later resolution the same token and details (`VaultService.resolve_test_card`). Asking
again for every payment made with a test id is a gRPC round trip and a vault database read
that cannot change the answer, so the core keeps it. Entries expire after `ttl_s` so that the
one thing that can change it, the token being deleted at the vault through its admin API (the
vault then seals the test card again under a new token), is seen within that time; until then
a payment with that test id fails as an attempt the vault would not forward (code
`payment_method_unexpected_state`, never sent to the network).

Resolution itself writes nothing at the vault (no audit row: no card data leaves it), so the
cache skips no record. Errors are not cached: an unknown test id is asked about every time.
"""

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Final

from remit.payment_methods.domain import VaultCard
from remit.payment_methods.vault_client import CardVault

DEFAULT_TTL_S: Final = 60.0
# About fifty test ids exist; this bounds memory when very many accounts use them.
DEFAULT_MAX_ENTRIES: Final = 10_000


class TestCardCache:
    """A `CardVault` that remembers test-id resolutions; everything else goes to the vault."""

    __test__ = False  # a production class whose name starts with "Test": not a pytest class

    def __init__(
        self,
        vault: CardVault,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._vault = vault
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._monotonic = monotonic
        self._entries: OrderedDict[tuple[str, str], tuple[float, VaultCard]] = OrderedDict()

    async def resolve_test_card(self, account_id: str, test_id: str) -> VaultCard:
        key = (account_id, test_id)
        now = self._monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            self._entries.move_to_end(key)
            return entry[1]
        card = await self._vault.resolve_test_card(account_id, test_id)
        self._entries[key] = (now + self._ttl_s, card)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return card

    def forget_card(self, account_id: str, vault_token: str) -> None:
        """A card the vault would not open (deleted through its admin API): the next use of
        its test id asks the vault again, which gives the test id a new card."""
        stale = [
            key
            for key, (_, card) in self._entries.items()
            if key[0] == account_id and card.vault_token == vault_token
        ]
        for key in stale:
            del self._entries[key]

    async def card_details(self, account_id: str, vault_token: str) -> VaultCard:
        return await self._vault.card_details(account_id, vault_token)

    async def delete_card(self, account_id: str, vault_token: str) -> bool:
        self.forget_card(account_id, vault_token)
        return await self._vault.delete_card(account_id, vault_token)

    async def update_card_details(
        self,
        account_id: str,
        vault_token: str,
        *,
        expiry: tuple[int, int] | None,
        billing_details: Mapping[str, object] | None,
    ) -> VaultCard:
        return await self._vault.update_card_details(
            account_id, vault_token, expiry=expiry, billing_details=billing_details
        )
