"""Payouts: from the available balance, through the simulated bank, back on failure."""

import asyncio
from dataclasses import fields
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.clock import FixedClock
from remit.core.errors import RemitError
from remit.core.jsonview import JsonObject
from remit.ledger import postings as ledger
from remit.ledger.balance_repository import BalanceRepository, TimeRange
from remit.ledger.jobs import advance_payouts, create_automatic_payouts
from remit.ledger.messages import payout_message
from remit.ledger.objects import (
    BalanceTransactionType,
    NewPayout,
    Payout,
    PayoutMethod,
    PayoutStatus,
)
from remit.ledger.payouts import SUBMISSION_DELAY
from remit.ledger.service import LedgerService
from remit.ledger.tables import ledger_events
from remit.ledger.verify import verify_ledger
from remit.payments.keyed import Done, Keyed, KeyedCall, Replay, value_of
from remit.payments.requests import current_request, note_call
from remit.webhooks.domain import Event
from remit.webhooks.rendering import event_json
from remit.webhooks.tables import events
from remit_api.ledger.v1 import ledger_pb2 as pb
from tests.integration.ledger.conftest import NewAccount
from tests.support.locks import until_a_session_waits_on_a_lock
from versions import LATEST_VERSION

pytestmark = pytest.mark.anyio


async def fund(engine: AsyncEngine, account_id: str, clock: FixedClock, gross: int) -> int:
    """Capture a charge straight into the available balance; returns its net."""
    async with engine.begin() as db:
        txn = await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id=f"ch_{gross}_{clock.now().timestamp()}",
            gross_minor=gross,
            currency="usd",
            now=clock.now(),
            bypass_pending=True,
        )
    return txn.net


async def available(service: LedgerService, account_id: str) -> int:
    return (await service.get_balance(account_id)).available[0].amount


async def advance(engine: AsyncEngine, clock: FixedClock) -> None:
    async with engine.begin() as db:
        await advance_payouts(db, now=clock.now())


async def test_a_payout_larger_than_the_available_balance_is_refused(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    service = LedgerService(core_engine, clock)
    net = await fund(core_engine, account_id, clock, 1_000)
    with pytest.raises(RemitError) as raised:
        await service.create_payout(account_id, amount=net + 1, currency="usd")
    assert (raised.value.code, raised.value.param) == ("balance_insufficient", "amount")
    assert await available(service, account_id) == net
    payouts, _ = await service.list_payouts(account_id, limit=10)
    assert payouts == []


@pytest.mark.parametrize("source_type", ["bank_account", "fpx"])
async def test_a_payout_from_funds_other_than_card_funds_is_balance_insufficient(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock, source_type: str
) -> None:
    """remit holds card funds only: a payout from the bank_account or fpx balance finds it
    empty, as Stripe's would on an account without such funds."""
    service = LedgerService(core_engine, clock)
    net = await fund(core_engine, account_id, clock, 1_000)
    with pytest.raises(RemitError) as raised:
        await service.create_payout(account_id, amount=100, currency="usd", source_type=source_type)
    assert raised.value.code == "balance_insufficient"
    assert source_type in raised.value.message
    assert await available(service, account_id) == net
    payouts, _ = await service.list_payouts(account_id, limit=10)
    assert payouts == []
    from_card = await service.create_payout(
        account_id, amount=100, currency="usd", source_type="card"
    )
    assert (from_card.source_type, from_card.amount) == ("card", 100)


async def test_a_payout_travels_to_paid_on_its_arrival_date(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    service = LedgerService(core_engine, clock)
    net = await fund(core_engine, account_id, clock, 1_000)
    payout = await service.create_payout(
        account_id, amount=net, currency="usd", metadata={"order": "7"}
    )
    assert payout.status is PayoutStatus.PENDING
    # Stripe's arrival_date is a day: midnight UTC two days after 2026-11-02 09:30.
    assert payout.arrival_date == datetime(2026, 11, 4, tzinfo=UTC)
    assert await available(service, account_id) == 0
    txn = await service.get_balance_transaction(account_id, payout.balance_transaction_id or "")
    assert (txn.type, txn.amount, txn.net, txn.source_id) == (
        BalanceTransactionType.PAYOUT,
        -net,
        -net,
        payout.id,
    )
    clock.advance(SUBMISSION_DELAY.total_seconds())
    await advance(core_engine, clock)
    assert (await service.get_payout(account_id, payout.id)).status is PayoutStatus.IN_TRANSIT
    clock.advance(timedelta(days=2).total_seconds())
    await advance(core_engine, clock)
    assert (await service.get_payout(account_id, payout.id)).status is PayoutStatus.PAID
    assert await available(service, account_id) == 0
    async with core_engine.connect() as db:
        types = [
            row.type
            for row in await db.execute(select(ledger_events.c.type).order_by(ledger_events.c.id))
        ]
        assert (await verify_ledger(db, now=clock.now())).ok
    # The funding capture, made available at once, announced the balance first.
    assert types == ["balance.available", "payout.created", "payout.updated", "payout.paid"]


async def test_a_failed_payout_returns_its_funds(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    service = LedgerService(core_engine, clock)
    net = await fund(core_engine, account_id, clock, 1_000)
    payout = await service.create_payout(
        account_id,
        amount=net,
        currency="usd",
        method=PayoutMethod.INSTANT,
        metadata={"simulate_failure": "account_closed"},
    )
    clock.advance(SUBMISSION_DELAY.total_seconds())
    await advance(core_engine, clock)
    failed = await service.get_payout(account_id, payout.id)
    assert failed.status is PayoutStatus.FAILED
    assert failed.failure_code == "account_closed"
    assert failed.failure_balance_transaction_id is not None
    refund = await service.get_balance_transaction(
        account_id, failed.failure_balance_transaction_id
    )
    assert (refund.type, refund.amount) == (BalanceTransactionType.PAYOUT_FAILURE, net)
    assert await available(service, account_id) == net


async def test_a_payout_described_fail_fails(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    service = LedgerService(core_engine, clock)
    net = await fund(core_engine, account_id, clock, 500)
    payout = await service.create_payout(account_id, amount=net, currency="usd", description="fail")
    clock.advance(timedelta(days=3).total_seconds())
    await advance(core_engine, clock)
    failed = await service.get_payout(account_id, payout.id)
    assert (failed.status, failed.failure_code) == (PayoutStatus.FAILED, "could_not_process")
    assert await available(service, account_id) == net


async def test_a_pending_payout_can_be_canceled_and_an_in_transit_one_cannot(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    service = LedgerService(core_engine, clock)
    net = await fund(core_engine, account_id, clock, 1_000)
    first = await service.create_payout(account_id, amount=100, currency="usd")
    canceled = value_of(await service.cancel_payout(account_id, first.id))
    assert canceled.status is PayoutStatus.CANCELED
    # Stripe names the balance transaction that reversed the payout's, canceled as failed.
    assert canceled.failure_balance_transaction_id is not None
    assert (await service.get_payout(account_id, first.id)) == canceled
    returned = await service.get_balance_transaction(
        account_id, canceled.failure_balance_transaction_id
    )
    assert (returned.type, returned.amount) == (BalanceTransactionType.PAYOUT_CANCEL, 100)
    assert await available(service, account_id) == net
    second = await service.create_payout(account_id, amount=100, currency="usd")
    clock.advance(SUBMISSION_DELAY.total_seconds())
    await advance(core_engine, clock)
    with pytest.raises(RemitError) as raised:
        await service.cancel_payout(account_id, second.id)
    assert raised.value.code == "payout_not_cancelable"
    assert await available(service, account_id) == net - 100


async def test_payout_metadata_can_be_set_unset_and_cleared(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    service = LedgerService(core_engine, clock)
    await fund(core_engine, account_id, clock, 1_000)
    payout = await service.create_payout(
        account_id, amount=100, currency="usd", metadata={"a": "1", "b": "2"}
    )
    updated = value_of(
        await service.update_payout(
            account_id, payout.id, set_keys={"c": "3"}, unset_keys=["a"], clear=False
        )
    )
    assert dict(updated.metadata) == {"b": "2", "c": "3"}
    cleared = value_of(
        await service.update_payout(account_id, payout.id, set_keys={}, unset_keys=[], clear=True)
    )
    assert dict(cleared.metadata) == {}


async def test_payouts_list_newest_first_and_filter_by_status(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    service = LedgerService(core_engine, clock)
    await fund(core_engine, account_id, clock, 10_000)
    made = []
    for _ in range(3):
        made.append(await service.create_payout(account_id, amount=100, currency="usd"))
        clock.advance(1)
    await service.cancel_payout(account_id, made[0].id)
    page, has_more = await service.list_payouts(account_id, limit=2)
    assert [p.id for p in page] == [made[2].id, made[1].id]
    assert has_more
    rest, has_more = await service.list_payouts(account_id, limit=2, starting_after=made[1].id)
    assert [p.id for p in rest] == [made[0].id]
    assert not has_more
    canceled, _ = await service.list_payouts(account_id, limit=10, status=PayoutStatus.CANCELED)
    assert [p.id for p in canceled] == [made[0].id]


async def test_automatic_payouts_sweep_the_available_balance_once_a_day(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock
) -> None:
    account_id = await new_account(automatic_payouts=True)
    service = LedgerService(core_engine, clock)
    net = await fund(core_engine, account_id, clock, 2_000)
    created = await create_automatic_payouts(core_engine, now=clock.now())
    assert [(p.account_id, p.amount, p.automatic) for p in created] == [(account_id, net, True)]
    await fund(core_engine, account_id, clock, 3_000)
    assert await create_automatic_payouts(core_engine, now=clock.now()) == []
    with pytest.raises(RemitError):
        await service.cancel_payout(account_id, created[0].id)
    async with core_engine.connect() as db:
        paid_out, _ = await BalanceRepository(db).list_balance_transactions(
            account_id,
            limit=10,
            starting_after=None,
            ending_before=None,
            created=TimeRange(),
            payout_id=created[0].id,
            source_id=None,
            type=None,
            currency=None,
        )
    assert {t.type for t in paid_out} == {
        BalanceTransactionType.CHARGE,
        BalanceTransactionType.PAYOUT,
    }


async def test_concurrent_payouts_with_one_key_pay_out_once(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """Eight copies of one payout request racing with one key: the key, the payout and its
    stored answer commit together, so one pays out and the others replay its answer."""
    service = LedgerService(core_engine, clock)
    net = await fund(core_engine, account_id, clock, 10_000)
    call = KeyedCall(
        account_id=account_id, key="race", endpoint="CreatePayout", request_body=b"payout 700"
    )

    async def pay_out() -> Done[Payout] | Replay:
        return await service.create_payout_once(
            account_id,
            Keyed(call, lambda payout: payout.id.encode()),
            NewPayout(amount=700, currency="usd"),
        )

    results = await asyncio.gather(*(pay_out() for _ in range(8)))
    done = [r.value.id for r in results if isinstance(r, Done)]
    replayed = {r.body.decode() for r in results if isinstance(r, Replay)}
    assert len(done) == 1
    assert replayed == set(done)
    assert await available(service, account_id) == net - 700
    listed, _ = await service.list_payouts(account_id, limit=10)
    assert [p.id for p in listed] == done


async def _listed_under(
    engine: AsyncEngine, account_id: str, payout_id: str
) -> list[tuple[str, int]]:
    async with engine.connect() as db:
        rows, has_more = await BalanceRepository(db).list_balance_transactions(
            account_id,
            limit=100,
            starting_after=None,
            ending_before=None,
            created=TimeRange(),
            payout_id=payout_id,
            source_id=None,
            type=None,
            currency=None,
        )
    assert not has_more
    return [(t.type.value, t.net) for t in rows]


def _paid_in(listed: list[tuple[str, int]]) -> int:
    """What the rows listed under a payout bring in, the payout's own row left out."""
    return sum(net for type, net in listed if type != "payout")


async def test_the_next_automatic_payout_pays_out_what_a_failed_one_returned(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock
) -> None:
    account_id = await new_account(automatic_payouts=True)
    service = LedgerService(core_engine, clock)
    first_net = await fund(core_engine, account_id, clock, 2_000)
    [first] = await create_automatic_payouts(core_engine, now=clock.now())
    await service.update_payout(
        account_id,
        first.id,
        set_keys={"simulate_failure": "account_closed"},
        unset_keys=[],
        clear=False,
    )
    clock.advance(timedelta(days=2).total_seconds())
    await advance(core_engine, clock)
    assert (await service.get_payout(account_id, first.id)).status is PayoutStatus.FAILED
    later_net = await fund(core_engine, account_id, clock, 3_000)
    clock.advance(timedelta(days=1).total_seconds())
    [second] = await create_automatic_payouts(core_engine, now=clock.now())
    assert second.amount == first_net + later_net
    listed = await _listed_under(core_engine, account_id, second.id)
    assert sorted(type for type, _ in listed) == ["charge", "payout", "payout_failure"]
    assert _paid_in(listed) == second.amount
    assert sum(net for _, net in listed) == 0
    first_listed = await _listed_under(core_engine, account_id, first.id)
    assert sorted(type for type, _ in first_listed) == ["charge", "payout"]
    failure = await service.get_balance_transaction(
        account_id,
        (await service.get_payout(account_id, first.id)).failure_balance_transaction_id or "",
    )
    assert failure.source_id == first.id


async def test_an_automatic_payout_leaves_out_what_a_manual_payout_already_paid(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock
) -> None:
    account_id = await new_account(automatic_payouts=True)
    service = LedgerService(core_engine, clock)
    early_net = await fund(core_engine, account_id, clock, 1_000)
    manual = await service.create_payout(account_id, amount=early_net, currency="usd")
    clock.advance(1)
    later_net = await fund(core_engine, account_id, clock, 3_000)
    [automatic] = await create_automatic_payouts(core_engine, now=clock.now())
    assert automatic.amount == later_net
    listed = await _listed_under(core_engine, account_id, automatic.id)
    assert sorted(listed) == [("charge", later_net), ("payout", -later_net)]
    assert await _listed_under(core_engine, account_id, manual.id) == [("payout", -early_net)]


async def _payout_events(engine: AsyncEngine, account_id: str) -> list[dict[str, object]]:
    async with engine.connect() as db:
        rows = await db.execute(
            select(events)
            .where(events.c.account_id == account_id, events.c.type.like("payout.%"))
            .order_by(events.c.created_at, events.c.id)
        )
    return [dict(row._mapping) for row in rows]


def _shown_data(row: dict[str, object]) -> JsonObject:
    """The `data` of a recorded event as webhooks and GET /v1/events show it."""
    shared = {field.name: row[field.name] for field in fields(Event) if field.name in row}
    event = Event(**shared)  # type: ignore[arg-type]
    data = event_json(event, api_version=LATEST_VERSION)["data"]
    assert isinstance(data, dict)
    return data


async def test_payout_events_name_their_request_and_what_an_update_changed(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """Changes made for a request name it; the bank's progress, made by the worker, names
    none, as Stripe's automatic changes do. payout.updated carries the old values of what it
    changed, and an update that changes nothing is no event."""
    service = LedgerService(core_engine, clock)
    await fund(core_engine, account_id, clock, 1_000)
    note_call("req_create", "po-key")
    payout = await service.create_payout(
        account_id, amount=100, currency="usd", metadata={"batch": "1"}
    )
    clock.advance(1)  # events of one instant list in no particular order
    note_call("req_update", None)
    for _ in range(2):  # the second changes nothing
        await service.update_payout(
            account_id, payout.id, set_keys={"note": "x"}, unset_keys=["batch"], clear=False
        )
    current_request.set(None)  # the worker's own run
    clock.advance(SUBMISSION_DELAY.total_seconds())
    await advance(core_engine, clock)

    made = await _payout_events(core_engine, account_id)
    assert [(e["type"], e["request_id"], e["idempotency_key"]) for e in made] == [
        ("payout.created", "req_create", "po-key"),
        ("payout.updated", "req_update", None),
        ("payout.updated", None, None),
    ]
    created, edited, in_transit = made
    # A creation changed nothing: none are recorded, and the event leaves the key out.
    assert created["previous_attributes"] is None
    assert "previous_attributes" not in _shown_data(created)
    assert _shown_data(edited)["previous_attributes"] == edited["previous_attributes"]
    # The keys of `metadata` that changed: one removed (its old value), one added (null).
    assert edited["previous_attributes"] == {"metadata": {"batch": "1", "note": None}}
    assert edited["data_object"]["metadata"] == {"note": "x"}  # type: ignore[index]
    assert in_transit["previous_attributes"] == {"status": "pending"}
    assert in_transit["data_object"]["status"] == "in_transit"  # type: ignore[index]


async def test_an_account_switched_to_manual_payouts_while_the_sweep_waits_is_not_paid_out(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock
) -> None:
    """The sweep's unlocked look finds the account owed an automatic payout; the merchant
    switches to manual payouts while the sweep waits for the account's turn. Under the turn
    the setting is read again, and no payout is made."""
    account_id = await new_account(automatic_payouts=True)
    service = LedgerService(core_engine, clock)
    net = await fund(core_engine, account_id, clock, 2_000)
    async with core_engine.connect() as holder:
        await holder.execute(text("SELECT ledger_wait_turn(:a)"), {"a": account_id})
        sweep = asyncio.create_task(create_automatic_payouts(core_engine, now=clock.now()))
        await until_a_session_waits_on_a_lock(core_engine, contender=sweep)
        await AccountsService(core_engine, clock).update_account(
            account_id, automatic_payouts=False
        )
        await holder.rollback()
    assert await asyncio.wait_for(sweep, 10) == []
    assert await available(service, account_id) == net
    payouts, _ = await service.list_payouts(account_id, limit=10)
    assert payouts == []


async def test_a_switch_to_manual_payouts_during_an_automatic_payout_returns_after_it(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock
) -> None:
    """The sweep has read the setting under the account's turn and is making the payout when
    the merchant switches to manual payouts. The switch waits for the payout to commit: it
    never returns "manual" while an automatic payout is still being made."""
    account_id = await new_account(automatic_payouts=True)
    service = LedgerService(core_engine, clock)
    net = await fund(core_engine, account_id, clock, 2_000)
    async with core_engine.connect() as holder:
        # The payout's posting waits here, after the sweep has read the setting.
        await holder.execute(
            text(
                "SELECT 1 FROM ledger_accounts WHERE account_id = :a AND name = 'available' "
                "FOR UPDATE"
            ),
            {"a": account_id},
        )
        sweep = asyncio.create_task(create_automatic_payouts(core_engine, now=clock.now()))
        await until_a_session_waits_on_a_lock(core_engine, contender=sweep)
        switch = asyncio.create_task(
            AccountsService(core_engine, clock).update_account(account_id, automatic_payouts=False)
        )
        await until_a_session_waits_on_a_lock(core_engine, contender=switch, sessions=2)
        await holder.rollback()
    made = await asyncio.wait_for(sweep, 30)
    assert [(p.amount, p.automatic) for p in made] == [(net, True)]
    assert await available(service, account_id) == 0
    assert not (await asyncio.wait_for(switch, 30)).automatic_payouts


async def test_an_automatic_payouts_contents_are_listable_from_its_creation(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock
) -> None:
    """Stripe's reconciliation_status `completed` means the balance transactions paid out can
    be listed by payout; remit links them in the transaction that creates the payout, so an
    automatic payout is `completed` from the start (Stripe's own fixture shows an in_transit
    one so) and stays so. A manual payout lists no contents: `not_applicable`."""
    account_id = await new_account(automatic_payouts=True)
    service = LedgerService(core_engine, clock)
    await fund(core_engine, account_id, clock, 2_000)
    [automatic] = await create_automatic_payouts(core_engine, now=clock.now())
    assert automatic.status is PayoutStatus.PENDING
    assert (
        payout_message(automatic).reconciliation_status == pb.PAYOUT_RECONCILIATION_STATUS_COMPLETED
    )
    listed = await _listed_under(core_engine, account_id, automatic.id)
    assert _paid_in(listed) == automatic.amount
    manual_account = await new_account()
    await fund(core_engine, manual_account, clock, 1_000)
    manual = await service.create_payout(manual_account, amount=100, currency="usd")
    assert (
        payout_message(manual).reconciliation_status
        == pb.PAYOUT_RECONCILIATION_STATUS_NOT_APPLICABLE
    )
    clock.advance((SUBMISSION_DELAY + timedelta(days=2)).total_seconds())
    await advance(core_engine, clock)
    paid = await service.get_payout(account_id, automatic.id)
    assert paid.status is PayoutStatus.PAID
    assert payout_message(paid).reconciliation_status == pb.PAYOUT_RECONCILIATION_STATUS_COMPLETED
    assert await _listed_under(core_engine, account_id, automatic.id) == listed
