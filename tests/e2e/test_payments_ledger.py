"""Payments post to the ledger as they happen: the balance, its transactions and the ledger's
own verification agree with the money that moved."""

import subprocess
import sys
from datetime import UTC, datetime

import psycopg
import stripe

from remit.worker.runner import libpq_url
from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform
from tests.support.postgres import WorkerDatabases

RETURN_URL = "https://shop.example/return"


def _acquirer_records(databases: WorkerDatabases, account_id: str) -> list[tuple[object, ...]]:
    """Each of the account's authorizations at the acquirer, as the network recorded it: the
    amount held, the state, and each approved operation on it with its amount and release."""
    with psycopg.connect(libpq_url(databases.acquirer_url), autocommit=True) as db:
        rows = db.execute(
            "SELECT a.authorized_minor, a.captured_minor, a.state, o.kind, o.amount_minor,"
            " o.released_minor FROM authorizations AS a JOIN operations AS o"
            " ON o.authorization_id = a.id AND o.approved WHERE a.merchant_id = %s",
            (account_id,),
        ).fetchall()
    return sorted(tuple(row) for row in rows)


def _balance(client: stripe.StripeClient, kind: str) -> int:
    balance = client.v1.balance.retrieve()
    return sum(entry.amount for entry in getattr(balance, kind) if entry.currency == "usd")


def test_captures_refunds_and_fees_reach_the_balance_and_the_ledger_verifies(
    client: stripe.StripeClient,
    platform: RunningPlatform,
    account: TestAccount,
    databases: WorkerDatabases,
) -> None:
    paid = client.v1.payment_intents.create(
        params={
            "amount": 10000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": RETURN_URL,
        }
    )
    held = client.v1.payment_intents.create(
        params={
            "amount": 5000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "capture_method": "manual",
            "return_url": RETURN_URL,
        }
    )
    # An authorization reserves money but moves none into the balance.
    assert _balance(client, "pending") == 10000 - 320  # 2.9% + 30 cents
    client.v1.payment_intents.capture(held.id, params={"amount_to_capture": 3000})
    assert _balance(client, "pending") == (10000 - 320) + (3000 - 117)
    # The network recorded the release of the 2000 not captured with the capture itself, and
    # nothing is left to capture: authorized = captured + released.
    assert _acquirer_records(databases, account.id) == [
        (5000, 3000, "closed", "authorize", 5000, 0),
        (5000, 3000, "closed", "capture", 3000, 2000),
        (10000, 10000, "closed", "authorize", 10000, 0),
    ]
    client.v1.refunds.create(params={"payment_intent": paid.id, "amount": 1000})
    assert _balance(client, "available") == -1000  # refunds come out of available at once

    transactions = client.v1.balance_transactions.list(params={"limit": 10}).data
    by_type = sorted((t.type, t.amount, t.fee) for t in transactions)
    assert by_type == [("charge", 3000, 117), ("charge", 10000, 320), ("refund", -1000, 0)]

    # Each charge and refund names its balance transaction, which expands (fees and net).
    charge = client.v1.charges.retrieve(
        str(paid.latest_charge), params={"expand": ["balance_transaction"]}
    )
    assert isinstance(charge.balance_transaction, stripe.BalanceTransaction)
    assert (charge.balance_transaction.amount, charge.balance_transaction.fee) == (10000, 320)
    assert charge.balance_transaction.net == 10000 - 320
    assert charge.balance_transaction.source == charge.id
    captured = client.v1.payment_intents.retrieve(
        held.id, params={"expand": ["latest_charge.balance_transaction"]}
    )
    assert isinstance(captured.latest_charge, stripe.Charge)
    held_fee = captured.latest_charge.balance_transaction
    assert isinstance(held_fee, stripe.BalanceTransaction)
    assert (held_fee.amount, held_fee.fee) == (3000, 117)
    (refund,) = client.v1.refunds.list(params={"payment_intent": paid.id}).data
    assert refund.balance_transaction in {t.id for t in transactions if t.type == "refund"}

    verify = subprocess.run(
        [sys.executable, "-m", "remit", "ledger", "verify"],
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # The acquirer withheld 1.50% of each capture (through the vault for the sale): the ledger
    # booked the same fees, which the merchant never saw above. Today is not over: what has
    # settled so far is compared, as a partial result.
    reconcile = subprocess.run(
        [sys.executable, "-m", "remit", "reconcile", "--account", account.id,
         "--date", datetime.now(UTC).date().isoformat(), "--allow-partial"],
        env=platform.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
    # The partial capture's release agrees on both sides: nothing differs.
    assert "amount mismatches 0, fee mismatches 0" in reconcile.stdout
    rows = [line.split() for line in reconcile.stdout.splitlines()]
    fees = sorted(
        (row[1], row[-2], row[-1])
        for row in rows
        if row[:1] == ["matched"] and row[1] in ("capture", "refund")
    )
    assert fees == [("capture", "150", "150"), ("capture", "45", "45"), ("refund", "0", "0")]


def test_canceling_an_authorization_releases_its_reservation(
    client: stripe.StripeClient, platform: RunningPlatform
) -> None:
    held = client.v1.payment_intents.create(
        params={
            "amount": 2500,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "capture_method": "manual",
            "return_url": RETURN_URL,
        }
    )
    assert client.v1.charges.retrieve(str(held.latest_charge)).balance_transaction is None
    client.v1.payment_intents.cancel(held.id)
    assert _balance(client, "pending") == 0
    assert client.v1.balance_transactions.list().data == []
