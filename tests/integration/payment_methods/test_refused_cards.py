"""A card the vault refused to open for a charge is not handed out again for its test id."""

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.payment_methods.domain import CardSummary, VaultCard
from remit.payment_methods.service import PaymentMethodsService
from remit.payment_methods.test_card_cache import TestCardCache
from remit.payments.methods import StoredPaymentMethods
from tests.support.card_vaults import TestCardsKeepTheirDetails

pytestmark = pytest.mark.anyio


class RemintingVault(TestCardsKeepTheirDetails):
    """Like the vault after a test card's deletion: the test id resolves to a new card."""

    def __init__(self) -> None:
        self.minted = 0

    async def resolve_test_card(self, account_id: str, test_id: str) -> VaultCard:
        assert test_id == "pm_card_visa"
        return VaultCard(
            f"vtok_{self.minted}", CardSummary("visa", "4242", 12, 2034, "fp", "credit", "US")
        )

    async def card_details(self, account_id: str, vault_token: str) -> VaultCard:
        raise AssertionError("not used")

    def forget_card(self, account_id: str, vault_token: str) -> None:
        raise AssertionError("the cache in front of the vault forgets, not the vault")

    async def delete_card(self, account_id: str, vault_token: str) -> bool:
        raise AssertionError("not used")


async def test_the_next_payment_after_a_refusal_asks_the_vault_for_the_test_card(
    core_engine: AsyncEngine,
) -> None:
    account_id = (await AccountsService(core_engine).create_account()).account.id
    vault = RemintingVault()
    methods = StoredPaymentMethods(PaymentMethodsService(core_engine, TestCardCache(vault)))
    first = await methods.chargeable_card(account_id, "pm_card_visa")
    vault.minted += 1  # the card is deleted at the vault; the test id now has a new one
    cached = await methods.chargeable_card(account_id, "pm_card_visa")
    methods.card_refused(account_id, first.vault_token)
    fresh = await methods.chargeable_card(account_id, "pm_card_visa")
    assert cached.vault_token == first.vault_token == "vtok_0"
    assert fresh.vault_token == "vtok_1"
