"""A merchant's update of a charge (POST /v1/charges/{id}): what describes it changes, in one
transaction with its key and its charge.updated event, and nothing else does."""

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.errors import ErrorKind, RemitError
from remit.payments.charge_refunds import ChargeRefunds
from remit.payments.charges import Charge, ChargeUpdate
from remit.payments.keyed import Keyed, KeyedCall
from remit.payments.service import Done, PaymentsService, Replay
from remit.payments.tables import idempotency_keys
from tests.integration.payments.conftest import payments_with_core_hooks
from tests.integration.payments.test_payment_events import recorded
from tests.integration.payments.test_payments_service import pay

pytestmark = pytest.mark.anyio

SHIPPING = {
    "name": "Jenny Rosen",
    "phone": "+33 1 23 45 67 89",
    "address": {"line1": "2 Rue Royale", "city": "Paris", "country": "FR"},
}
Updated = tuple[Charge, ChargeRefunds]


@pytest.fixture
def payments(core_engine: AsyncEngine) -> PaymentsService:
    return payments_with_core_hooks(core_engine)


async def _paid_charge(payments: PaymentsService, account_id: str, key: str = "pay") -> Charge:
    intent = await pay(payments, account_id, key)
    assert intent.latest_charge_id is not None
    charge, _ = await payments.get_charge(account_id, intent.latest_charge_id)
    return charge


async def _update(
    payments: PaymentsService,
    charge: Charge,
    update: ChargeUpdate,
    keyed: Keyed[Updated] | None = None,
) -> Charge:
    result = await payments.update_charge(charge.account_id, charge.id, update, keyed)
    assert isinstance(result, Done)
    updated, _ = result.value
    return updated


def _keyed(charge: Charge, key: str, request_body: bytes) -> Keyed[Updated]:
    call = KeyedCall(
        account_id=charge.account_id, key=key, endpoint="UpdateCharge", request_body=request_body
    )
    return Keyed(call, lambda updated: updated[0].id.encode())


async def _key_rows(engine: AsyncEngine, account_id: str) -> int:
    async with engine.connect() as db:
        counted = await db.scalar(
            select(func.count())
            .select_from(idempotency_keys)
            .where(idempotency_keys.c.account_id == account_id)
        )
    return int(counted or 0)


async def test_an_update_sets_the_description_metadata_receipt_email_and_shipping(
    payments: PaymentsService, account_id: str
) -> None:
    charge = await _paid_charge(payments, account_id)
    updated = await _update(
        payments,
        charge,
        ChargeUpdate(
            description="Order 6735",
            metadata={"order": "6735"},
            receipt_email="jenny@example.com",
            shipping=SHIPPING,
        ),
    )

    stored, _ = await payments.get_charge(account_id, charge.id)
    assert stored == updated
    assert (stored.description, dict(stored.metadata)) == ("Order 6735", {"order": "6735"})
    assert (stored.receipt_email, stored.shipping) == ("jenny@example.com", SHIPPING)
    # Its money is as it was, and its intent keeps its own description and metadata.
    assert (stored.status, stored.captured, stored.amount_captured_minor) == (
        charge.status,
        True,
        charge.amount_captured_minor,
    )
    intent = await payments.get_payment_intent(account_id, charge.payment_intent_id)
    assert (intent.description, dict(intent.metadata)) == (None, {})


async def test_an_update_clears_each_field_given_empty_and_removes_unset_metadata_keys(
    payments: PaymentsService, account_id: str
) -> None:
    charge = await _paid_charge(payments, account_id)
    described = await _update(
        payments,
        charge,
        ChargeUpdate(
            description="Order 6735",
            metadata={"order": "6735", "channel": "web", "gift": "yes"},
            receipt_email="jenny@example.com",
            shipping=SHIPPING,
        ),
    )

    one_key_less = await _update(payments, described, ChargeUpdate(unset_metadata_keys=("gift",)))
    assert dict(one_key_less.metadata) == {"order": "6735", "channel": "web"}
    cleared = await _update(
        payments,
        one_key_less,
        ChargeUpdate(description="", receipt_email="", clear_shipping=True, clear_metadata=True),
    )

    stored, _ = await payments.get_charge(account_id, charge.id)
    assert stored == cleared
    assert (stored.description, stored.receipt_email, stored.shipping) == (None, None, None)
    assert dict(stored.metadata) == {}


async def test_metadata_may_hold_50_keys_once_merged_and_no_more(
    payments: PaymentsService, account_id: str
) -> None:
    charge = await _paid_charge(payments, account_id)
    thirty = await _update(
        payments, charge, ChargeUpdate(metadata={f"first{i}": "x" for i in range(30)})
    )

    with pytest.raises(RemitError) as refused:
        await _update(payments, thirty, ChargeUpdate(metadata={f"more{i}": "x" for i in range(21)}))
    assert (refused.value.kind, refused.value.param) == (ErrorKind.INVALID_ARGUMENT, "metadata")
    assert "at most 50 keys" in refused.value.message
    stored, _ = await payments.get_charge(account_id, charge.id)
    assert len(stored.metadata) == 30

    # Keys removed in the same update make room for as many new ones.
    fifty = await _update(
        payments,
        thirty,
        ChargeUpdate(
            unset_metadata_keys=("first0",), metadata={f"more{i}": "x" for i in range(21)}
        ),
    )
    assert len(fifty.metadata) == 50


async def test_an_unknown_charge_is_not_found_naming_the_id(
    payments: PaymentsService, account_id: str
) -> None:
    with pytest.raises(RemitError) as missing:
        await payments.update_charge(account_id, "ch_missing", ChargeUpdate(description="x"))
    assert (missing.value.kind, missing.value.code, missing.value.param) == (
        ErrorKind.NOT_FOUND,
        "resource_missing",
        "id",  # the charge is named in the path, as Stripe's 404 says
    )


async def test_another_accounts_charge_is_not_found_and_stays_as_it_was(
    payments: PaymentsService, account_id: str, core_engine: AsyncEngine
) -> None:
    charge = await _paid_charge(payments, account_id)
    other = (await AccountsService(core_engine).create_account()).account.id

    with pytest.raises(RemitError) as missing:
        await payments.update_charge(other, charge.id, ChargeUpdate(description="not mine"))
    assert (missing.value.kind, missing.value.code, missing.value.param) == (
        ErrorKind.NOT_FOUND,
        "resource_missing",
        "id",  # the charge is named in the path, as Stripe's 404 says
    )
    stored, _ = await payments.get_charge(account_id, charge.id)
    assert stored.description is None


async def test_a_keyed_retry_replays_the_first_answer_and_writes_nothing_more(
    payments: PaymentsService, account_id: str, core_engine: AsyncEngine
) -> None:
    charge = await _paid_charge(payments, account_id)
    keys_before = await _key_rows(core_engine, account_id)
    first = await _update(
        payments, charge, ChargeUpdate(description="first"), _keyed(charge, "k", b"first")
    )
    events_after_first = await recorded(core_engine, account_id)

    again = await payments.update_charge(
        account_id, charge.id, ChargeUpdate(description="first"), _keyed(charge, "k", b"first")
    )

    assert again == Replay(code=0, body=charge.id.encode())
    stored, _ = await payments.get_charge(account_id, charge.id)
    assert (stored.description, stored.updated_at) == ("first", first.updated_at)
    assert await recorded(core_engine, account_id) == events_after_first
    assert await _key_rows(core_engine, account_id) == keys_before + 1


async def test_other_parameters_under_a_used_key_are_an_idempotency_error(
    payments: PaymentsService, account_id: str
) -> None:
    charge = await _paid_charge(payments, account_id)
    await _update(
        payments, charge, ChargeUpdate(description="first"), _keyed(charge, "k", b"first")
    )

    with pytest.raises(RemitError) as mismatch:
        await payments.update_charge(
            account_id,
            charge.id,
            ChargeUpdate(description="second"),
            _keyed(charge, "k", b"second"),
        )
    assert mismatch.value.error_type == "idempotency_error"
    stored, _ = await payments.get_charge(account_id, charge.id)
    assert stored.description == "first"


async def test_an_update_without_a_key_writes_no_key_row(
    payments: PaymentsService, account_id: str, core_engine: AsyncEngine
) -> None:
    charge = await _paid_charge(payments, account_id)
    keys_before = await _key_rows(core_engine, account_id)

    await _update(payments, charge, ChargeUpdate(description="unkeyed"))

    assert await _key_rows(core_engine, account_id) == keys_before


async def test_an_update_records_charge_updated_with_the_previous_attributes(
    payments: PaymentsService, account_id: str, core_engine: AsyncEngine
) -> None:
    charge = await _paid_charge(payments, account_id)
    await _update(payments, charge, ChargeUpdate(metadata={"order": "6735"}))
    before = len(await recorded(core_engine, account_id))

    await _update(
        payments,
        charge,
        ChargeUpdate(description="Order 6735", receipt_email="jenny@example.com"),
    )

    made = (await recorded(core_engine, account_id))[before:]
    assert [kind for kind, _ in made] == ["charge.updated"]
    data = made[0][1]
    assert data["previous"] == {"description": None, "receipt_email": None}
    body = data["object"]
    assert isinstance(body, dict)
    assert (body["id"], body["object"]) == (charge.id, "charge")
    assert (body["description"], body["receipt_email"]) == ("Order 6735", "jenny@example.com")
    assert body["metadata"] == {"order": "6735"}


async def test_an_update_that_changes_nothing_records_no_event(
    payments: PaymentsService, account_id: str, core_engine: AsyncEngine
) -> None:
    charge = await _paid_charge(payments, account_id)
    before = len(await recorded(core_engine, account_id))

    await _update(payments, charge, ChargeUpdate(unset_metadata_keys=("absent",)))

    assert len(await recorded(core_engine, account_id)) == before
