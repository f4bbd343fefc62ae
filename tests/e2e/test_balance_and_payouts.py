"""The balance, balance transactions and payouts through the official SDK."""

import asyncio
from datetime import UTC, datetime

import pytest
import stripe

from remit.ledger import postings as ledger
from remit.storage.engine import dispose, make_engine
from tests.support.accounts import TestAccount
from tests.support.postgres import WorkerDatabases


def capture(
    databases: WorkerDatabases, account_id: str, charge_id: str, gross: int, *, bypass_pending: bool
) -> str:
    """Record a captured charge the way the payments service does; returns its txn_ id."""

    async def run() -> str:
        engine = make_engine(databases.core_url, pool_size=1)
        try:
            async with engine.begin() as db:
                txn = await ledger.record_charge_captured(
                    db,
                    account_id=account_id,
                    charge_id=charge_id,
                    gross_minor=gross,
                    currency="usd",
                    now=datetime.now(UTC),
                    bypass_pending=bypass_pending,
                )
            return txn.id
        finally:
            await dispose(engine)

    return asyncio.run(run())


def test_a_new_account_has_a_zero_balance_in_its_currency(client: stripe.StripeClient) -> None:
    balance = client.v1.balance.retrieve()
    assert balance.object == "balance"
    assert [(a.amount, a.currency) for a in balance.available] == [(0, "usd")]
    assert [(a.amount, a.currency) for a in balance.pending] == [(0, "usd")]


def test_captured_funds_show_in_the_balance_and_as_balance_transactions(
    client: stripe.StripeClient, account: TestAccount, databases: WorkerDatabases
) -> None:
    pending_txn = capture(databases, account.id, "ch_e2e_1", 10_000, bypass_pending=False)
    available_txn = capture(databases, account.id, "ch_e2e_2", 2_000, bypass_pending=True)
    balance = client.v1.balance.retrieve()
    assert balance.pending[0].amount == 9_680
    assert balance.available[0].amount == 2_000 - 88
    assert balance.available[0].source_types is not None
    retrieved = client.v1.balance_transactions.retrieve(pending_txn)
    assert retrieved.object == "balance_transaction"
    assert (retrieved.amount, retrieved.fee, retrieved.net) == (10_000, 320, 9_680)
    assert (retrieved.type, retrieved.status, retrieved.source) == ("charge", "pending", "ch_e2e_1")
    assert retrieved.fee_details[0].type == "stripe_fee"
    assert retrieved.reporting_category == "charge"
    assert retrieved.available_on > retrieved.created
    listed = client.v1.balance_transactions.list(params={"limit": 1})
    assert [t.id for t in listed.data] == [available_txn]
    assert listed.has_more
    by_source = client.v1.balance_transactions.list(params={"source": "ch_e2e_1"})
    assert [t.id for t in by_source.data] == [pending_txn]


def test_a_payout_beyond_the_available_balance_is_a_400_balance_insufficient(
    client: stripe.StripeClient, account: TestAccount, databases: WorkerDatabases
) -> None:
    capture(databases, account.id, "ch_e2e_3", 1_000, bypass_pending=True)
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payouts.create(params={"amount": 10_000, "currency": "usd"})
    assert raised.value.http_status == 400
    assert raised.value.code == "balance_insufficient"


def test_payouts_are_created_listed_updated_and_canceled(
    client: stripe.StripeClient, account: TestAccount, databases: WorkerDatabases
) -> None:
    capture(databases, account.id, "ch_e2e_4", 5_000, bypass_pending=True)
    payout = client.v1.payouts.create(
        params={"amount": 1_000, "currency": "usd", "metadata": {"batch": "1"}}
    )
    assert payout.id.startswith("po_")
    assert (payout.object, payout.status, payout.amount) == ("payout", "pending", 1_000)
    assert payout.automatic is False
    assert payout.method == "standard"
    assert payout.balance_transaction is not None
    updated = client.v1.payouts.update(payout.id, params={"metadata": {"batch": "", "note": "x"}})
    assert updated.metadata is not None
    assert updated.metadata.to_dict() == {"note": "x"}
    assert client.v1.payouts.list().data[0].id == payout.id
    canceled = client.v1.payouts.cancel(payout.id)
    assert canceled.status == "canceled"
    assert client.v1.balance.retrieve().available[0].amount == 5_000 - 175
    txns = client.v1.balance_transactions.list(params={"payout": payout.id})
    assert sorted(t.type for t in txns.data) == ["payout", "payout_cancel"]
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payouts.retrieve("po_missing")
    assert raised.value.http_status == 404


def test_a_payout_retried_with_its_key_is_paid_out_once(
    client: stripe.StripeClient, account: TestAccount, databases: WorkerDatabases
) -> None:
    """The SDKs retry a POST whose answer was lost (a timeout, a 5xx) with the same
    Idempotency-Key; a payout must then move the money once and answer as the first time."""
    capture(databases, account.id, "ch_e2e_once", 5_000, bypass_pending=True)
    available = client.v1.balance.retrieve().available[0].amount

    def pay_out(amount: int, key: str) -> stripe.Payout:
        return client.v1.payouts.create(
            params={"amount": amount, "currency": "usd"}, options={"idempotency_key": key}
        )

    first = pay_out(1_200, "po-once")
    again = pay_out(1_200, "po-once")
    assert again.id == first.id
    assert again.last_response is not None
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    assert [p.id for p in client.v1.payouts.list().data] == [first.id]
    assert client.v1.balance.retrieve().available[0].amount == available - 1_200
    with pytest.raises(stripe.IdempotencyError):
        pay_out(1_300, "po-once")
    # A refused payout is the key's answer, as at Stripe: retried after money arrived, it
    # replays the refusal and moves nothing.
    with pytest.raises(stripe.InvalidRequestError) as refused:
        pay_out(1_000_000, "po-2")
    assert refused.value.code == "balance_insufficient"
    capture(databases, account.id, "ch_e2e_more", 2_000_000, bypass_pending=True)
    funded = client.v1.balance.retrieve().available[0].amount
    with pytest.raises(stripe.InvalidRequestError) as replayed:
        pay_out(1_000_000, "po-2")
    assert (replayed.value.http_status, replayed.value.code) == (400, "balance_insufficient")
    assert replayed.value.headers is not None
    assert replayed.value.headers.get("Idempotent-Replayed") == "true"
    assert client.v1.balance.retrieve().available[0].amount == funded
    # A payout failing validation stores nothing: the key may then carry a payout that fits.
    with pytest.raises(stripe.InvalidRequestError) as invalid:
        pay_out(0, "po-3")
    assert invalid.value.param == "amount"
    assert pay_out(100, "po-3").amount == 100

    # A cancel retried with its key answers as the first time (without the key the retry is a
    # 400: the payout is no longer pending), and the money comes back once.
    before_cancel = client.v1.balance.retrieve().available[0].amount
    canceled = client.v1.payouts.cancel(first.id, options={"idempotency_key": "po-cancel"})
    again_canceled = client.v1.payouts.cancel(first.id, options={"idempotency_key": "po-cancel"})
    assert (canceled.status, again_canceled.status) == ("canceled", "canceled")
    assert again_canceled.last_response is not None
    assert again_canceled.last_response.headers.get("Idempotent-Replayed") == "true"
    assert client.v1.balance.retrieve().available[0].amount == before_cancel + 1_200
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payouts.cancel(first.id)


def test_balance_transactions_in_a_currency_remit_does_not_hold_are_an_empty_list(
    client: stripe.StripeClient, account: TestAccount, databases: WorkerDatabases
) -> None:
    """Stripe supports currencies remit does not; filtering by one finds nothing, and only a
    value that is no currency code at all is a 400."""
    txn = capture(databases, account.id, "ch_e2e_currency", 1_000, bypass_pending=True)
    assert client.v1.balance_transactions.list(params={"currency": "mnt"}).data == []
    listed = client.v1.balance_transactions.list(params={"currency": "USD"})
    assert [t.id for t in listed.data] == [txn]
    for malformed in ("us", "usd1", "u$d"):
        with pytest.raises(stripe.InvalidRequestError) as raised:
            client.v1.balance_transactions.list(params={"currency": malformed})
        assert (raised.value.http_status, raised.value.param) == (400, "currency")


def test_a_payout_from_bank_account_funds_is_a_400_balance_insufficient(
    client: stripe.StripeClient, account: TestAccount, databases: WorkerDatabases
) -> None:
    capture(databases, account.id, "ch_e2e_source", 1_000, bypass_pending=True)
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payouts.create(
            params={"amount": 100, "currency": "usd", "source_type": "bank_account"}
        )
    assert (raised.value.http_status, raised.value.code) == (400, "balance_insufficient")
    payout = client.v1.payouts.create(
        params={"amount": 100, "currency": "usd", "source_type": "card"}
    )
    assert payout.source_type == "card"
    assert payout.arrival_date % 86_400 == 0


@pytest.mark.parametrize("destination", ["ba_made_up", "acct_1", "card_1"])
def test_a_payout_to_a_destination_that_is_no_external_account_is_a_404(
    client: stripe.StripeClient, account: TestAccount, databases: WorkerDatabases, destination: str
) -> None:
    """remit keeps no external accounts, so no `destination` names one: a payout sent to one
    is refused as Stripe refuses an unknown external account, and moves nothing."""
    capture(databases, account.id, f"ch_e2e_dest_{destination}", 1_000, bypass_pending=True)
    available = client.v1.balance.retrieve().available[0].amount
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payouts.create(
            params={"amount": 100, "currency": "usd", "destination": destination}
        )
    error = raised.value
    assert (error.http_status, error.code, error.param) == (404, "resource_missing", "destination")
    assert f"No such external account: '{destination}'" in str(error.user_message)
    assert "destination" in str(error.user_message)
    assert client.v1.payouts.list().data == []
    assert client.v1.balance.retrieve().available[0].amount == available


def test_payout_events_name_the_request_and_what_an_update_changed(
    client: stripe.StripeClient, account: TestAccount, databases: WorkerDatabases
) -> None:
    capture(databases, account.id, "ch_e2e_events", 5_000, bypass_pending=True)
    payout = client.v1.payouts.create(
        params={"amount": 1_000, "currency": "usd", "metadata": {"batch": "1"}},
        options={"idempotency_key": "po-events"},
    )
    updated = client.v1.payouts.update(
        payout.id,
        params={"metadata": {"batch": "2", "note": "x"}},
        options={"idempotency_key": "po-edit"},
    )
    assert payout.last_response is not None
    assert updated.last_response is not None
    listed = client.v1.events.list(params={"type": "payout.*"})
    by_type = {event.type: event for event in listed.data}
    assert set(by_type) == {"payout.created", "payout.updated"}
    created, edited = by_type["payout.created"], by_type["payout.updated"]
    assert created.request is not None
    assert (created.request.id, created.request.idempotency_key) == (
        payout.last_response.request_id,
        "po-events",
    )
    assert edited.request is not None
    assert (edited.request.id, edited.request.idempotency_key) == (
        updated.last_response.request_id,
        "po-edit",
    )
    assert edited.data.previous_attributes is not None
    # The keys of `metadata` that changed: one changed (its old value), one added (null).
    assert edited.data.previous_attributes.to_dict() == {"metadata": {"batch": "1", "note": None}}
