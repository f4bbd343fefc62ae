"""The events payments record (through the webhooks outbox), read back from the events table."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.errors import RemitError
from remit.core.jsonview import JsonObject, JsonValue
from remit.payment_methods.domain import CardSummary, PaymentMethod
from remit.payment_methods.repository import SqlPaymentMethodRepository
from remit.payments.domain import CaptureMethod
from remit.payments.events import PaymentEvents
from remit.payments.grpc import payment_intent_message
from remit.payments.network import OperationOutcome
from remit.payments.ports import HookChain
from remit.payments.related import database_payment_methods, event_renderer
from remit.payments.service import Done, PaymentsService
from remit.webhooks.domain import Event
from remit.webhooks.rendering import event_json, render_event
from remit.webhooks.repository import EventRepository
from remit.webhooks.tables import events
from tests.integration.payments.conftest import FakeMethods
from tests.integration.payments.test_payments_service import call, pay, refund_intent, respond
from tests.support.authorizations import let_authorization_expire
from tests.support.fake_network import FakeNetwork
from tests.support.statements import statements_sent
from versions import LATEST_VERSION

pytestmark = pytest.mark.anyio


@dataclass
class RefusingNetwork(FakeNetwork):
    """Refunds are refused by the network (the acquirer's `refund_failed`)."""

    async def refund(
        self, *, authorization_id: str, amount_minor: int, reference: str
    ) -> OperationOutcome:
        outcome = OperationOutcome(False, "op_refused", amount_minor, "expired_or_canceled_card",
                                   "The card was canceled.")  # fmt: skip
        self.operations[reference] = outcome
        return outcome


def service(engine: AsyncEngine, network: FakeNetwork) -> PaymentsService:
    return PaymentsService(engine, network, FakeMethods(), present=payment_intent_message,
                           hooks=HookChain([PaymentEvents()]))  # fmt: skip


async def recorded(engine: AsyncEngine, account_id: str) -> list[tuple[str, dict[str, object]]]:
    async with engine.connect() as db:
        rows = await db.execute(
            select(events.c.type, events.c.data_object, events.c.previous_attributes)
            .where(events.c.account_id == account_id)
            .order_by(events.c.created_at, events.c.seq)
        )
    return [(row.type, {"object": row.data_object, "previous": row.previous_attributes})
            for row in rows]  # fmt: skip


async def refund(payments: PaymentsService, account_id: str, intent_id: str, amount: int) -> None:
    done = await refund_intent(payments, account_id, f"refund-{intent_id}", intent_id, amount)
    assert isinstance(done, Done)


async def test_a_refund_records_charge_refunded_refund_created_and_its_outcome(
    core_engine: AsyncEngine, account_id: str
) -> None:
    payments = service(core_engine, FakeNetwork())
    intent = await pay(payments, account_id, "k1", amount=1000)
    before = len(await recorded(core_engine, account_id))
    await refund(payments, account_id, intent.id, 400)

    made = (await recorded(core_engine, account_id))[before:]
    assert [kind for kind, _ in made] == [
        "charge.refunded",
        "refund.created",
        "refund.updated",
        "charge.refund.updated",
    ]
    charge_refunded, created, updated, charge_refund_updated = (data for _, data in made)
    assert charge_refunded["object"]["amount_refunded"] == 400  # type: ignore[index]
    assert charge_refunded["previous"] == {"amount_refunded": 0}
    assert created["object"]["status"] == "pending"  # type: ignore[index]
    assert updated["object"]["status"] == "succeeded"  # type: ignore[index]
    assert updated["previous"]["status"] == "pending"  # type: ignore[index]
    # Why it was pending, while it was: the acquirer had it to process.
    assert created["object"]["pending_reason"] == "processing"  # type: ignore[index]
    assert updated["object"]["pending_reason"] is None  # type: ignore[index]
    assert updated["previous"]["pending_reason"] == "processing"  # type: ignore[index]
    # As on Stripe, the pending refund already names its balance transaction; succeeding
    # does not change it.
    shown = created["object"]["balance_transaction"]  # type: ignore[index]
    assert isinstance(shown, str)
    assert shown.startswith("txn_")
    assert updated["object"]["balance_transaction"] == shown  # type: ignore[index]
    assert "balance_transaction" not in updated["previous"]  # type: ignore[operator]
    # Stripe's other event for a refund's change carries the same refund.
    assert charge_refund_updated == updated


async def test_a_refused_refund_gives_the_amount_back_without_a_second_charge_refunded(
    core_engine: AsyncEngine, account_id: str
) -> None:
    payments = service(core_engine, RefusingNetwork())
    intent = await pay(payments, account_id, "k2", amount=1000)
    before = len(await recorded(core_engine, account_id))
    await refund(payments, account_id, intent.id, 1000)

    made = (await recorded(core_engine, account_id))[before:]
    assert [kind for kind, _ in made] == [
        "charge.refunded",
        "refund.created",
        "refund.updated",
        "charge.refund.updated",
        "refund.failed",
    ]
    assert made[2][1]["object"]["status"] == "failed"  # type: ignore[index]
    assert made[2][1]["object"]["pending_reason"] is None  # type: ignore[index]
    assert made[3][1] == made[2][1]
    # Stripe's refund.failed carries the failed refund, without previous attributes.
    assert made[4][1] == {"object": made[2][1]["object"], "previous": None}
    assert made[4][1]["object"]["failure_reason"] == "expired_or_canceled_card"  # type: ignore[index]
    charge, _ = await payments.get_charge(account_id, intent.latest_charge_id or "")
    assert charge.amount_refunded_minor == 0


async def test_a_card_the_vault_will_not_open_records_charge_failed_never_sent(
    core_engine: AsyncEngine, account_id: str
) -> None:
    """Never sent to the network, yet a failed payment Stripe has a charge for: told with
    charge.failed (the rule in `remit.payments.events`)."""
    payments = service(core_engine, FakeNetwork(unopenable={"visa"}))
    with pytest.raises(RemitError) as raised:
        await pay(payments, account_id, "k-unopenable")

    made = await recorded(core_engine, account_id)
    assert [kind for kind, _ in made] == [
        "payment_intent.created",
        "charge.failed",
        "payment_intent.payment_failed",
    ]
    charge = made[1][1]["object"]
    assert charge["id"] == raised.value.charge  # type: ignore[index]
    assert (charge["failure_code"], charge["outcome"]["type"]) == (  # type: ignore[index]
        "payment_method_unexpected_state",
        "invalid",
    )
    assert charge["outcome"]["network_status"] == "not_sent_to_network"  # type: ignore[index]


async def test_events_render_for_old_versions_with_the_lists_of_their_time(
    core_engine: AsyncEngine, account_id: str
) -> None:
    payments = service(core_engine, FakeNetwork())
    intent = await pay(payments, account_id, "k3", amount=1000)
    await refund(payments, account_id, intent.id, 250)
    async with core_engine.connect() as db:
        rows = (await db.execute(select(events.c.id, events.c.type)
                                 .where(events.c.account_id == account_id))).all()  # fmt: skip
        by_type = {row.type: await EventRepository(db).get(account_id, row.id) for row in rows}
    render = event_renderer(core_engine)

    async def at_2022(event_type: str) -> dict[str, Any]:
        stored = by_type[event_type]
        assert stored is not None
        body = event_json(stored, api_version="2022-08-01")
        rendered = await render(stored, body, "2022-08-01")
        data = rendered["data"]
        assert isinstance(data, dict)
        return data["object"]  # type: ignore[return-value]

    # The charge had no refund yet when it succeeded; it had one when it was refunded.
    assert (await at_2022("charge.succeeded"))["refunds"]["total_count"] == 0
    refunded = (await at_2022("charge.refunded"))["refunds"]
    assert [r["amount"] for r in refunded["data"]] == [250]
    succeeded = await at_2022("payment_intent.succeeded")
    assert [c["id"] for c in succeeded["charges"]["data"]] == [intent.latest_charge_id]
    assert succeeded["charges"]["data"][0]["refunds"]["total_count"] == 0


async def _save_method(engine: AsyncEngine, account_id: str, method_id: str) -> None:
    card = CardSummary(brand="visa", last4="0002", exp_month=12, exp_year=2034,
                       fingerprint="fp_declined", funding="credit", country="US")  # fmt: skip
    method = PaymentMethod(id=method_id, account_id=account_id, vault_token="declined",
                           card=card, created_at=datetime.now(UTC))  # fmt: skip
    async with engine.begin() as db:
        await SqlPaymentMethodRepository(db).insert(method)


async def _payment_failed(engine: AsyncEngine, account_id: str, intent_id: str) -> Event:
    failed = select(events.c.id, events.c.data_object).where(
        events.c.account_id == account_id, events.c.type == "payment_intent.payment_failed"
    )
    async with engine.connect() as db:
        rows = (await db.execute(failed)).all()
        [event_id] = [row.id for row in rows if row.data_object["id"] == intent_id]
        stored = await EventRepository(db).get(account_id, event_id)
    assert stored is not None
    return stored


async def _declined_intent_id(payments: PaymentsService, account_id: str, pm: str) -> str:
    with pytest.raises(RemitError) as raised:
        await pay(payments, account_id, f"decline-{pm}", pm=pm)
    charge, _ = await payments.get_charge(account_id, raised.value.charge or "")
    return charge.payment_intent_id


async def test_payment_failed_renders_the_payment_method_object_at_every_version(
    core_engine: AsyncEngine, account_id: str
) -> None:
    await _save_method(core_engine, account_id, "pm_declined")
    payments = service(core_engine, FakeNetwork())
    stored = await _payment_failed(
        core_engine, account_id, await _declined_intent_id(payments, account_id, "pm_declined")
    )
    render = event_renderer(core_engine)

    for version in (LATEST_VERSION, "2022-08-01"):
        rendered = await render_event(stored, render, version)
        method = _failed_payment_method(rendered)
        assert isinstance(method, dict)
        card = method["card"]
        assert isinstance(card, dict)
        assert (method["object"], method["id"], card["brand"], card["last4"]) == (
            "payment_method",
            "pm_declined",
            "visa",
            "0002",
        )
    # Rendering leaves the stored event as it was recorded: naming the payment method.
    assert _last_error(stored.data_object)["payment_method"] == "pm_declined"

    # A payment method the core cannot find (never saved here) stays an id.
    missing = await _payment_failed(
        core_engine, account_id, await _declined_intent_id(payments, account_id, "pm_insufficient")
    )
    assert _failed_payment_method(await render_event(missing, render, LATEST_VERSION)) == (
        "pm_insufficient"
    )


def _failed_payment_method(rendered: JsonObject) -> JsonValue:
    data = rendered["data"]
    assert isinstance(data, dict)
    intent = data["object"]
    assert isinstance(intent, dict)
    return _last_error(intent)["payment_method"]


def _last_error(intent: JsonObject) -> JsonObject:
    error = intent["last_payment_error"]
    assert isinstance(error, dict)
    return error


async def test_payment_methods_for_events_are_read_in_one_query_within_the_account(
    core_engine: AsyncEngine, account_id: str
) -> None:
    await _save_method(core_engine, account_id, "pm_mine_1")
    await _save_method(core_engine, account_id, "pm_mine_2")
    someone_else = (await AccountsService(core_engine).create_account()).account.id
    await _save_method(core_engine, someone_else, "pm_theirs")
    fetch = database_payment_methods(core_engine, account_id)
    with statements_sent(core_engine) as statements:
        found = await fetch({"pm_mine_1", "pm_mine_2", "pm_theirs", "pm_missing"})
    assert sorted(found) == ["pm_mine_1", "pm_mine_2"]
    assert found["pm_mine_1"]["object"] == "payment_method"
    assert len([sql for sql in statements if "payment_methods" in sql]) == 1


async def test_a_refunds_metadata_update_records_both_refund_updates_with_the_old_metadata(
    core_engine: AsyncEngine, account_id: str
) -> None:
    payments = service(core_engine, FakeNetwork())
    intent = await pay(payments, account_id, "k-refund-update", amount=1000)
    await refund(payments, account_id, intent.id, 300)
    [made], _ = await payments.list_refunds(account_id, limit=10)
    before = len(await recorded(core_engine, account_id))

    await payments.update_refund(account_id, made.id, {"ticket": "T-1"}, False, [])
    # The same metadata again changes nothing and records nothing.
    await payments.update_refund(account_id, made.id, {"ticket": "T-1"}, False, [])

    recorded_since = (await recorded(core_engine, account_id))[before:]
    assert [kind for kind, _ in recorded_since] == ["refund.updated", "charge.refund.updated"]
    data = recorded_since[0][1]
    assert data["object"]["metadata"] == {"ticket": "T-1"}  # type: ignore[index]
    assert data["previous"] == {"metadata": {"ticket": None}}  # a key added
    assert recorded_since[1][1] == data


async def test_an_expired_authorization_records_charge_expired_then_the_intent_canceled(
    core_engine: AsyncEngine, account_id: str
) -> None:
    """Stripe's charge.expired, for an authorization left uncaptured until it expired; the
    worker expires it, so no request caused it. A cancel is not an expiry."""
    payments = service(core_engine, FakeNetwork())
    held = await pay(payments, account_id, "to-expire", capture=CaptureMethod.MANUAL)
    canceled = await pay(payments, account_id, "to-cancel", capture=CaptureMethod.MANUAL)
    before = len(await recorded(core_engine, account_id))
    await let_authorization_expire(core_engine, held.id)
    async with core_engine.begin() as db:
        assert await payments.expire_authorization(db, account_id, held.id)
    done = await payments.cancel_payment_intent(
        call(account_id, "cancel", endpoint="CancelPaymentIntent"), canceled.id, None, respond
    )
    assert isinstance(done, Done)

    made = (await recorded(core_engine, account_id))[before:]
    assert [kind for kind, _ in made] == [
        "charge.expired",
        "payment_intent.canceled",
        "payment_intent.canceled",
    ]
    charge = made[0][1]["object"]
    assert isinstance(charge, dict)
    assert (charge["id"], charge["captured"]) == (held.latest_charge_id, False)
    intent = made[1][1]["object"]
    assert isinstance(intent, dict)
    assert intent["cancellation_reason"] == "expired"
    async with core_engine.connect() as db:
        request_ids = (
            await db.execute(select(events.c.request_id).where(events.c.type == "charge.expired"))
        ).scalars()
        assert list(request_ids) == [None]


async def test_charge_expired_renders_the_released_amount_as_each_version_shows_it(
    core_engine: AsyncEngine, account_id: str
) -> None:
    """Before 2025-03-31 a released authorization counted as refunded; since, it does not. The
    field that tells a release (`authorization_released`) is never shown."""
    payments = service(core_engine, FakeNetwork())
    held = await pay(payments, account_id, "to-expire", amount=1000, capture=CaptureMethod.MANUAL)
    await let_authorization_expire(core_engine, held.id)
    async with core_engine.begin() as db:
        assert await payments.expire_authorization(db, account_id, held.id)
    async with core_engine.connect() as db:
        [event_id] = (
            await db.execute(select(events.c.id).where(events.c.type == "charge.expired"))
        ).scalars()
        stored = await EventRepository(db).get(account_id, event_id)
    assert stored is not None
    render = event_renderer(core_engine)

    async def charge_at(version: str) -> dict[str, Any]:
        rendered = await render(stored, event_json(stored, api_version=version), version)
        assert rendered["type"] == "charge.expired"
        data = rendered["data"]
        assert isinstance(data, dict)
        return data["object"]  # type: ignore[return-value]

    latest, acacia = await charge_at(LATEST_VERSION), await charge_at("2024-09-30.acacia")
    assert (latest["amount_refunded"], latest["refunded"]) == (0, False)
    assert (acacia["amount_refunded"], acacia["refunded"]) == (1000, True)
    assert "authorization_released" not in latest
    assert "authorization_released" not in acacia
