"""A charge keeps what Stripe copies onto it when it is made: the payment method's billing
details, and the intent's receipt email, statement descriptors, shipping and description."""

from dataclasses import replace

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.jsonview import to_json
from remit.payments.charges import Charge
from remit.payments.domain import CaptureMethod, NewPaymentIntent, Updated
from remit.payments.grpc import charge_message, payment_intent_message
from remit.payments.ports import ChargeableCard
from remit.payments.service import ConfirmParams, Done, PaymentsService
from tests.integration.payments.conftest import FakeMethods
from tests.integration.payments.test_payments_service import call, respond
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio

BILLING = {
    "name": "Jenny Rosen",
    "email": "jenny@example.com",
    "address": {"line1": "1 Main St", "city": "Paris", "postal_code": "75001", "country": "FR"},
}
SHIPPING = {
    "name": "Jenny Rosen",
    "phone": "+33 1 23 45 67 89",
    "address": {"line1": "2 Rue Royale", "city": "Paris", "country": "FR"},
}


class MethodsWithBillingDetails(FakeMethods):
    """pm_visa as a payment method created with billing details."""

    async def chargeable_card(self, account_id: str, payment_method_id: str) -> ChargeableCard:
        card = await super().chargeable_card(account_id, payment_method_id)
        return replace(card, billing_details=BILLING)


@pytest.fixture
def payments(core_engine: AsyncEngine, network: FakeNetwork) -> PaymentsService:
    return PaymentsService(
        core_engine, network, MethodsWithBillingDetails(), present=payment_intent_message
    )


async def _charge_of(
    payments: PaymentsService, account_id: str, key: str, new: NewPaymentIntent
) -> tuple[str, Charge]:
    result = await payments.create_payment_intent(
        call(account_id, key), new, respond, confirm=ConfirmParams(payment_method_id="pm_visa")
    )
    assert isinstance(result, Done)
    assert result.value.latest_charge_id is not None
    charge, _ = await payments.get_charge(account_id, result.value.latest_charge_id)
    return result.value.id, charge


async def test_a_charge_copies_the_billing_details_and_the_intents_receipt_and_shipping(
    payments: PaymentsService, account_id: str
) -> None:
    _, charge = await _charge_of(
        payments,
        account_id,
        "details",
        NewPaymentIntent(
            amount_minor=1500,
            currency="usd",
            description="Order 6735",
            receipt_email="jenny@example.com",
            statement_descriptor="REMIT SHOP",
            statement_descriptor_suffix="ORDER 6735",
            shipping=SHIPPING,
        ),
    )
    body = to_json(charge_message(charge))
    assert body["billing_details"] == {
        "address": {
            "city": "Paris",
            "country": "FR",
            "line1": "1 Main St",
            "line2": None,
            "postal_code": "75001",
            "state": None,
        },
        "email": "jenny@example.com",
        "name": "Jenny Rosen",
        "phone": None,
        "tax_id": None,
    }
    assert body["receipt_email"] == "jenny@example.com"
    assert body["statement_descriptor"] == "REMIT SHOP"
    assert body["statement_descriptor_suffix"] == "ORDER 6735"
    assert body["description"] == "Order 6735"
    assert body["shipping"] == {
        "address": {
            "city": "Paris",
            "country": "FR",
            "line1": "2 Rue Royale",
            "line2": None,
            "postal_code": None,
            "state": None,
        },
        "carrier": None,
        "name": "Jenny Rosen",
        "phone": "+33 1 23 45 67 89",
        "tracking_number": None,
    }


async def test_a_charge_without_any_of_them_still_renders_billing_details(
    core_engine: AsyncEngine, network: FakeNetwork, account_id: str
) -> None:
    payments = PaymentsService(core_engine, network, FakeMethods(), present=payment_intent_message)
    _, charge = await _charge_of(
        payments, account_id, "bare", NewPaymentIntent(amount_minor=1000, currency="usd")
    )
    body = to_json(charge_message(charge))
    assert body["billing_details"] == {
        "address": dict.fromkeys(("city", "country", "line1", "line2", "postal_code", "state")),
        "email": None,
        "name": None,
        "phone": None,
        "tax_id": None,
    }
    assert [
        body[name]
        for name in (
            "receipt_email",
            "statement_descriptor",
            "statement_descriptor_suffix",
            "shipping",
        )
    ] == [None, None, None, None]


async def test_updating_the_intent_afterwards_leaves_the_charge_as_it_was(
    payments: PaymentsService, account_id: str
) -> None:
    intent_id, before = await _charge_of(
        payments,
        account_id,
        "snapshot",
        NewPaymentIntent(
            amount_minor=1000,
            currency="usd",
            # Authorized only: an intent can still be updated while it awaits capture.
            capture_method=CaptureMethod.MANUAL,
            description="first",
            receipt_email="first@example.com",
            statement_descriptor_suffix="FIRST",
            shipping=SHIPPING,
        ),
    )
    updated = await payments.update_payment_intent(
        call(account_id, "snapshot-update", endpoint="UpdatePaymentIntent"),
        intent_id,
        Updated(
            at=before.created_at,
            changes={
                "description": "second",
                "receipt_email": "second@example.com",
                "statement_descriptor_suffix": "SECOND",
                "shipping": None,
            },
        ),
        respond,
    )
    assert isinstance(updated, Done)
    assert (updated.value.receipt_email, updated.value.shipping) == ("second@example.com", None)
    captured = await payments.capture_payment_intent(
        call(account_id, "snapshot-capture", endpoint="CapturePaymentIntent"),
        intent_id,
        None,
        respond,
    )
    assert isinstance(captured, Done)
    after, _ = await payments.get_charge(account_id, before.id)
    assert after.captured
    assert (
        after.description,
        after.receipt_email,
        after.statement_descriptor_suffix,
        after.shipping,
        after.billing_details,
    ) == ("first", "first@example.com", "FIRST", SHIPPING, BILLING)
