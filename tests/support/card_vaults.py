"""What the in-test vaults of the payment method tests share."""

from collections.abc import Mapping

from remit.core.errors import ErrorKind, RemitError
from remit.payment_methods.domain import VaultCard
from remit.payment_methods.vault_client import TEST_CARD_SHARED


class TestCardsKeepTheirDetails:
    """A vault of test cards answers a card's new details as the vault answers them for a test
    id's card (shared by every payment method of the test id): refused, so that a payment
    method's update keeps them in the core."""

    __test__ = False  # a mixin whose name starts with "Test": not a pytest class

    async def update_card_details(
        self,
        account_id: str,
        vault_token: str,
        *,
        expiry: tuple[int, int] | None,
        billing_details: Mapping[str, object] | None,
    ) -> VaultCard:
        raise RemitError(
            message=f"The vault token '{vault_token}' is a test id's card.",
            kind=ErrorKind.FAILED_PRECONDITION,
            code=TEST_CARD_SHARED,
        )
