"""Payment methods as the payments service needs them: a vault token and a card to show."""

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.errors import RemitError
from remit.payment_methods.service import MethodToCharge, PaymentMethodsService
from remit.payments.charges import CardSnapshot
from remit.payments.ports import ChargeableCard, Paying


class StoredPaymentMethods:
    """Resolves payment methods (test ids such as pm_card_visa included) through the
    payment-methods service, which asks the vault for card details; numbers never come here."""

    def __init__(self, service: PaymentMethodsService) -> None:
        self._service = service

    def card_refused(self, account_id: str, vault_token: str) -> None:
        self._service.card_refused(account_id, vault_token)

    async def chargeable_card(self, account_id: str, payment_method_id: str) -> ChargeableCard:
        return chargeable(await self._service.to_charge(account_id, payment_method_id))

    async def attempt_vault_token(self, account_id: str, payment_method_id: str) -> str:
        # Read as stored, without the check that it may be used (`resolve_for_use`).
        return (await self._service.get(account_id, payment_method_id)).vault_token

    async def attempt_card(self, account_id: str, payment_method_id: str) -> ChargeableCard:
        return chargeable(MethodToCharge(await self._service.get(account_id, payment_method_id)))


def chargeable(named: MethodToCharge) -> ChargeableCard:
    """The card of a payment method to pay with; a new one is written by the transaction that
    uses it, and a saved one checked again there, under its row lock (`ChargeableCard.save_in`)."""
    method, card = named.method, named.method.card

    async def save_in(db: AsyncConnection, paying: Paying | None) -> None:
        if named.is_new:
            spent_by = paying.intent_id if paying is not None and paying.spends else None
            await PaymentMethodsService.save_named_in(db, named, spent_by=spent_by)
        elif paying is not None:
            await PaymentMethodsService.use_in(
                db,
                method,
                paying.intent_id,
                customer_id=paying.customer_id,
                claim=paying.spends,
            )

    return ChargeableCard(
        payment_method_id=method.id,
        vault_token=method.vault_token,
        card=CardSnapshot(
            brand=card.brand,
            last4=card.last4,
            exp_month=card.exp_month,
            exp_year=card.exp_year,
            fingerprint=card.fingerprint,
            funding=card.funding,
            country=card.country,
        ),
        customer_id=method.customer_id,
        test_id=method.test_id,
        billing_details=method.billing_details,
        spent_by_intent_id=method.spent_by_intent_id,
        off_session_setup_transaction_id=method.off_session_setup_transaction_id,
        save_in=save_in,
    )


def chargeable_or_refusal(named: MethodToCharge | RemitError) -> ChargeableCard | RemitError:
    """`chargeable`, passing a refusal on as it is."""
    return named if isinstance(named, RemitError) else chargeable(named)
