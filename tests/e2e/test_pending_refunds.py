"""A refund waiting for the acquirer shows its balance transaction on the wire, as Stripe's
does: retrievable, listed, expandable from the refund and through its charge's refunds, and the
same once the refund succeeds; a refund the acquirer refuses shows the refund_failure that gave
its money back. Through it all the balance transactions add up to the balance.

The refunds wait because the acquirer is down when they are made: the request fails with a
5xx after recording the refund (pending, its money held), and the client's retry with the same
key finishes it once the acquirer is back. No worker runs, so no completer finishes them
meanwhile."""

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import stripe
from sqlalchemy import create_engine, text

from remit.config import TOKEN_ENV, Endpoint
from remit.storage.embedded import to_sqlalchemy_url
from tests.support.accounts import TestAccount, create_account
from tests.support.platform import platform_env
from tests.support.postgres import WorkerDatabases
from tests.support.processes import ProcessSet, process_set
from tests.support.waiting import wait_for

pytestmark = [
    pytest.mark.xdist_group("pending_refunds"),
    pytest.mark.own_platform(reason="runs the processes one by one and kills the acquirer"),
]


@pytest.fixture(scope="module")
def processes(databases: WorkerDatabases) -> Iterator[ProcessSet]:
    with tempfile.TemporaryDirectory(prefix="remit-pending-refunds-") as scratch:
        env = platform_env(databases, Path(scratch) / "data", REMIT_IDEMPOTENCY_LEASE_S="1")
        with process_set(env, Path(scratch)) as running:
            for role in ("acquirer", "vault", "core", "api"):
                running.start(role)
            yield running


@pytest.fixture
def account(processes: ProcessSet) -> TestAccount:
    core = Endpoint("127.0.0.1", int(processes.env["REMIT_CORE_PORT"]))
    return create_account(core, token=processes.env[TOKEN_ENV])


@pytest.fixture
def client(processes: ProcessSet, account: TestAccount) -> stripe.StripeClient:
    return stripe.StripeClient(
        account.secret_key,
        base_addresses={"api": f"http://127.0.0.1:{processes.env['REMIT_API_PORT']}"},
        max_network_retries=0,
    )


def _paid(client: stripe.StripeClient, amount: int, payment_method: str) -> stripe.PaymentIntent:
    intent = client.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "usd",
            "payment_method": payment_method,
            "confirm": True,
            "return_url": "https://shop.example/return",
        }
    )
    assert intent.status == "succeeded"
    return intent


def _refund(client: stripe.StripeClient, intent_id: str, amount: int, key: str) -> stripe.Refund:
    return client.v1.refunds.create(
        params={"payment_intent": intent_id, "amount": amount}, options={"idempotency_key": key}
    )


def _refund_while_the_acquirer_is_down(
    client: stripe.StripeClient, intent_id: str, amount: int, key: str
) -> stripe.Refund:
    """The refund's request fails, the refund stays: pending, waiting for the acquirer."""
    with pytest.raises(stripe.APIError):
        _refund(client, intent_id, amount, key)
    listed = client.v1.refunds.list(params={"payment_intent": intent_id}).data
    (pending,) = [r for r in listed if r.amount == amount and r.status == "pending"]
    return pending


def _finished(client: stripe.StripeClient, intent_id: str, amount: int, key: str) -> stripe.Refund:
    """The client's retry once the acquirer is back (its calls wait out the core's breaker)."""
    answers: list[stripe.Refund] = []

    def retried() -> bool:
        try:
            answers.append(_refund(client, intent_id, amount, key))
        except stripe.APIError:
            return False
        return True

    wait_for(retried, 60, every_s=0.5)
    return answers[-1]


def _adds_up(client: stripe.StripeClient) -> list[stripe.BalanceTransaction]:
    """Every balance transaction's net sums to available + pending; returns them."""
    listed = list(client.v1.balance_transactions.list(params={"limit": 100}).data)
    balance = client.v1.balance.retrieve()
    shown = sum(a.amount for a in balance.available) + sum(a.amount for a in balance.pending)
    assert sum(t.net for t in listed) == shown
    available = sum(a.amount for a in balance.available)
    assert sum(t.net for t in listed if t.status == "available") == available
    return listed


def _refuse_refunds_of(processes: ProcessSet, intent: stripe.PaymentIntent) -> None:
    """Make the acquirer refuse any further refund of `intent`'s charge, as a card the issuer
    no longer accepts refunds on would: its authorization counts as refunded in full."""
    core = create_engine(to_sqlalchemy_url(processes.env["DATABASE_URL"]))
    acquirer = create_engine(to_sqlalchemy_url(processes.env["ACQUIRER_DATABASE_URL"]))
    try:
        with core.connect() as db:
            authorization = db.execute(
                text("SELECT authorization_id FROM charges WHERE id = :id"),
                {"id": intent.latest_charge},
            ).scalar_one()
        with acquirer.begin() as db:
            db.execute(
                text("UPDATE authorizations SET refunded_minor = captured_minor WHERE id = :id"),
                {"id": authorization},
            )
    finally:
        core.dispose()
        acquirer.dispose()


def test_pending_refunds_show_their_balance_transactions_from_creation_to_outcome(
    processes: ProcessSet, client: stripe.StripeClient
) -> None:
    sale = _paid(client, 10_000, "pm_card_bypassPending")
    later = _paid(client, 4_000, "pm_card_visa")
    done = _refund(client, sale.id, 1_000, "done")
    assert done.status == "succeeded"
    before = {t.id for t in _adds_up(client)}

    processes.kill("acquirer")
    try:
        waiting = _refund_while_the_acquirer_is_down(client, sale.id, 2_000, "waiting")
        refused = _refund_while_the_acquirer_is_down(client, later.id, 500, "refused")
    finally:
        processes.start("acquirer")

    # Pending, yet already out of the balance under its balance transaction.
    assert isinstance(waiting.balance_transaction, str)
    assert waiting.balance_transaction.startswith("txn_")
    assert waiting.failure_balance_transaction is None
    txn = client.v1.balance_transactions.retrieve(waiting.balance_transaction)
    assert (txn.type, txn.reporting_category, txn.source) == ("refund", "refund", waiting.id)
    assert (txn.amount, txn.fee, txn.net, txn.status) == (-2_000, 0, -2_000, "available")
    assert txn.available_on == txn.created
    listed = _adds_up(client)
    assert {t.id for t in listed} - before == {
        waiting.balance_transaction,
        refused.balance_transaction,
    }
    refunds_listed = client.v1.balance_transactions.list(params={"type": "refund"}).data
    assert waiting.balance_transaction in {t.id for t in refunds_listed}
    by_source = client.v1.balance_transactions.list(params={"source": waiting.id}).data
    assert [t.id for t in by_source] == [waiting.balance_transaction]

    expanded = client.v1.refunds.retrieve(waiting.id, params={"expand": ["balance_transaction"]})
    assert isinstance(expanded.balance_transaction, stripe.BalanceTransaction)
    assert expanded.balance_transaction.id == txn.id
    charge = client.v1.charges.retrieve(
        str(sale.latest_charge), params={"expand": ["refunds.data.balance_transaction"]}
    )
    assert charge.refunds is not None
    shown = {r.id: r.balance_transaction for r in charge.refunds.data}
    assert set(shown) == {waiting.id, done.id}
    for refund_id, expanded_txn in shown.items():
        assert isinstance(expanded_txn, stripe.BalanceTransaction)
        assert expanded_txn.source == refund_id

    # The acquirer refunds one (the same balance transaction) and refuses the other (a
    # refund_failure gives its money back).
    succeeded = _finished(client, sale.id, 2_000, "waiting")
    assert (succeeded.id, succeeded.status) == (waiting.id, "succeeded")
    assert succeeded.balance_transaction == waiting.balance_transaction
    _refuse_refunds_of(processes, later)
    failed = _finished(client, later.id, 500, "refused")
    assert (failed.id, failed.status) == (refused.id, "failed")
    assert failed.balance_transaction == refused.balance_transaction
    assert isinstance(failed.failure_balance_transaction, str)
    back = client.v1.balance_transactions.retrieve(failed.failure_balance_transaction)
    assert (back.type, back.reporting_category, back.source) == (
        "refund_failure",
        "refund_failure",
        refused.id,
    )
    assert (back.amount, back.net, back.status) == (500, 500, "available")
    with_failure = client.v1.refunds.retrieve(
        refused.id, params={"expand": ["failure_balance_transaction"]}
    )
    assert isinstance(with_failure.failure_balance_transaction, stripe.BalanceTransaction)

    listed = _adds_up(client)
    assert {t.id for t in listed} - before == {
        waiting.balance_transaction,
        refused.balance_transaction,
        back.id,
    }
    # Nothing the merchant reconciles on changed when the refund posted.
    after = client.v1.balance_transactions.retrieve(txn.id)
    assert after.to_dict() == txn.to_dict()
