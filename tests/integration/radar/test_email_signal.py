"""`:email:` is the email supplied with the payment: the intent's receipt email, else the
payment method's billing details email, else the customer's, else `metadata[email]`."""

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.errors import RemitError
from remit.customers.domain import CustomerFields
from remit.payment_methods.domain import NewPaymentMethod
from remit.payments.domain import NewPaymentIntent
from remit.payments.service import ConfirmParams, Done, KeyedCall
from remit.radar.domain import RuleAction
from remit.radar.service import RadarService
from tests.integration.payments.test_setup_future_usage import Core

pytestmark = pytest.mark.anyio

FRAUDSTER = "fraud@example.com"


@pytest.fixture
def core(core_engine: AsyncEngine) -> Core:
    return Core(core_engine)


@pytest.fixture
async def account_id(core_engine: AsyncEngine) -> str:
    account_id = (await AccountsService(core_engine).create_account()).account.id
    await RadarService(core_engine).create_rule(
        account_id, RuleAction.BLOCK, f":email: = '{FRAUDSTER}'"
    )
    return account_id


async def _method(core: Core, account_id: str, email: str | None = None) -> str:
    billing = {} if email is None else {"email": email}
    new = NewPaymentMethod(payment_method_id="pm_card_visa", billing_details=billing)
    return (await core.methods.create(account_id, new)).id


async def _customer(core: Core, account_id: str, email: str) -> str:
    return (await core.customers.create(account_id, CustomerFields(email=email))).id


async def _pay(
    core: Core, account_id: str, key: str, pm: str, customer_id: str | None = None, **new: Any
) -> str:
    """The payment's status, or `blocked` when the rule blocked it."""
    try:
        result = await core.payments.create_payment_intent(
            KeyedCall(account_id, key, "CreatePaymentIntent", key.encode()),
            NewPaymentIntent(
                amount_minor=1000,
                currency="usd",
                customer_id=customer_id,
                return_url="https://shop.example/return",
                **new,
            ),
            lambda intent: intent.status.value.encode(),
            confirm=ConfirmParams(payment_method_id=pm),
        )
    except RemitError as error:
        refused = error
    else:
        assert isinstance(result, Done)
        return result.value.status.value
    assert refused.decline_code == "fraudulent"
    charge, _ = await core.payments.get_charge(account_id, refused.charge or "")
    assert charge.outcome is not None
    assert (charge.outcome["type"], charge.outcome["reason"]) == ("blocked", "rule")
    return "blocked"


async def test_a_rule_on_email_sees_the_payment_methods_billing_email(
    core: Core, account_id: str
) -> None:
    billed = await _method(core, account_id, FRAUDSTER)
    assert await _pay(core, account_id, "billing", billed) == "blocked"
    other = await _method(core, account_id, "someone@example.com")
    assert await _pay(core, account_id, "other", other) == "succeeded"


async def test_a_rule_on_email_sees_the_customers_email(core: Core, account_id: str) -> None:
    customer = await _customer(core, account_id, FRAUDSTER)
    pm = await _method(core, account_id)
    assert await _pay(core, account_id, "customer", pm, customer) == "blocked"
    other = await _customer(core, account_id, "someone@example.com")
    pm = await _method(core, account_id)
    assert await _pay(core, account_id, "other", pm, other) == "succeeded"


async def test_the_receipt_email_comes_first_then_the_billing_email_then_the_customers(
    core: Core, account_id: str
) -> None:
    customer = await _customer(core, account_id, FRAUDSTER)
    billed = await _method(core, account_id, "someone@example.com")
    assert await _pay(core, account_id, "billed", billed, customer) == "succeeded"
    receipt = await _method(core, account_id, FRAUDSTER)
    assert (
        await _pay(core, account_id, "receipt", receipt, receipt_email="someone@example.com")
        == "succeeded"
    )
    # `metadata[email]` comes last.
    listed = await _method(core, account_id)
    assert (
        await _pay(core, account_id, "meta", listed, customer, metadata={"email": "a@example.com"})
        == "blocked"
    )
