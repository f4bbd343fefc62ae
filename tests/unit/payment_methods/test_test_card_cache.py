import pytest

from remit.core.errors import ErrorKind, RemitError
from remit.payment_methods.domain import CardSummary, VaultCard
from remit.payment_methods.test_card_cache import TestCardCache
from tests.support.card_vaults import TestCardsKeepTheirDetails

pytestmark = pytest.mark.anyio


def _card(token: str) -> VaultCard:
    summary = CardSummary(
        brand="visa",
        last4="4242",
        exp_month=12,
        exp_year=2030,
        fingerprint="fp",
        funding="credit",
        country="US",
    )
    return VaultCard(token, summary)


class CountingVault(TestCardsKeepTheirDetails):
    """Answers like the vault: one token per (account, test id); counts every question."""

    def __init__(self) -> None:
        self.resolutions: list[tuple[str, str]] = []
        self.details: list[str] = []
        self.deleted: list[tuple[str, str]] = []
        self.tokens: dict[tuple[str, str], str] = {}

    async def resolve_test_card(self, account_id: str, test_id: str) -> VaultCard:
        self.resolutions.append((account_id, test_id))
        if test_id == "pm_card_unknown":
            raise RemitError(message="No such test card", kind=ErrorKind.NOT_FOUND)
        token = self.tokens.setdefault((account_id, test_id), f"vt_{len(self.tokens)}")
        return _card(token)

    async def card_details(self, account_id: str, vault_token: str) -> VaultCard:
        self.details.append(vault_token)
        return _card(vault_token)

    def forget_card(self, account_id: str, vault_token: str) -> None:
        raise AssertionError("the cache forgets; the vault is only asked again")

    async def delete_card(self, account_id: str, vault_token: str) -> bool:
        self.deleted.append((account_id, vault_token))
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_test_id_is_asked_of_the_vault_once_per_account() -> None:
    vault = CountingVault()
    cache = TestCardCache(vault, monotonic=Clock())
    first = await cache.resolve_test_card("acct_a", "pm_card_visa")
    again = await cache.resolve_test_card("acct_a", "pm_card_visa")
    other_account = await cache.resolve_test_card("acct_b", "pm_card_visa")
    other_card = await cache.resolve_test_card("acct_a", "pm_card_mastercard")
    assert again == first
    assert other_account.vault_token != first.vault_token
    assert other_card.vault_token != first.vault_token
    assert vault.resolutions == [
        ("acct_a", "pm_card_visa"),
        ("acct_b", "pm_card_visa"),
        ("acct_a", "pm_card_mastercard"),
    ]


async def test_an_entry_is_asked_for_again_once_it_expires() -> None:
    vault = CountingVault()
    clock = Clock()
    cache = TestCardCache(vault, ttl_s=60, monotonic=clock)
    await cache.resolve_test_card("acct_a", "pm_card_visa")
    clock.now += 59.9
    await cache.resolve_test_card("acct_a", "pm_card_visa")
    assert len(vault.resolutions) == 1
    clock.now += 0.2
    await cache.resolve_test_card("acct_a", "pm_card_visa")
    assert len(vault.resolutions) == 2


async def test_errors_are_not_kept() -> None:
    vault = CountingVault()
    cache = TestCardCache(vault, monotonic=Clock())
    for _ in range(2):
        with pytest.raises(RemitError) as raised:
            await cache.resolve_test_card("acct_a", "pm_card_unknown")
        assert raised.value.kind is ErrorKind.NOT_FOUND
    assert len(vault.resolutions) == 2


async def test_the_least_recently_used_entry_goes_first_when_full() -> None:
    vault = CountingVault()
    cache = TestCardCache(vault, max_entries=2, monotonic=Clock())
    await cache.resolve_test_card("acct_a", "pm_card_visa")
    await cache.resolve_test_card("acct_b", "pm_card_visa")
    await cache.resolve_test_card("acct_a", "pm_card_visa")  # acct_a is now the most recent
    await cache.resolve_test_card("acct_c", "pm_card_visa")  # evicts acct_b
    await cache.resolve_test_card("acct_a", "pm_card_visa")
    assert len(vault.resolutions) == 3
    await cache.resolve_test_card("acct_b", "pm_card_visa")
    assert vault.resolutions[-1] == ("acct_b", "pm_card_visa")
    assert len(vault.resolutions) == 4


async def test_card_details_always_go_to_the_vault() -> None:
    vault = CountingVault()
    cache = TestCardCache(vault, monotonic=Clock())
    await cache.card_details("acct_a", "vt_1")
    await cache.card_details("acct_a", "vt_1")
    assert vault.details == ["vt_1", "vt_1"]


async def test_a_card_the_vault_refused_is_resolved_again() -> None:
    """After the vault refused to open a test id's card (deleted through its admin API), the
    next payment with that test id asks the vault, which gives it a new card."""
    vault = CountingVault()
    cache = TestCardCache(vault, monotonic=Clock())
    refused = await cache.resolve_test_card("acct_a", "pm_card_visa")
    kept = await cache.resolve_test_card("acct_b", "pm_card_visa")
    cache.forget_card("acct_b", refused.vault_token)  # another account's token: no effect
    cache.forget_card("acct_a", refused.vault_token)
    vault.tokens[("acct_a", "pm_card_visa")] = "vt_new"
    assert (await cache.resolve_test_card("acct_a", "pm_card_visa")).vault_token == "vt_new"
    assert (await cache.resolve_test_card("acct_b", "pm_card_visa")) == kept
    assert vault.resolutions == [
        ("acct_a", "pm_card_visa"),
        ("acct_b", "pm_card_visa"),
        ("acct_a", "pm_card_visa"),
    ]


async def test_a_deleted_card_is_deleted_at_the_vault_and_not_handed_out_again() -> None:
    vault = CountingVault()
    cache = TestCardCache(vault, monotonic=Clock())
    card = await cache.resolve_test_card("acct_a", "pm_card_visa")
    assert await cache.delete_card("acct_a", card.vault_token)
    assert vault.deleted == [("acct_a", card.vault_token)]
    vault.tokens[("acct_a", "pm_card_visa")] = "vt_new"
    assert (await cache.resolve_test_card("acct_a", "pm_card_visa")).vault_token == "vt_new"
