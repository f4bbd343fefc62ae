"""Test card 4000000000000259 (`pm_card_createDispute`): the charge succeeds, then is disputed.
The worker opens the dispute after the capture; the merchant sees it through stripe-python,
with the money it took out of the balance, the events that told of it, and a ledger that still
verifies; a refund of the disputed charge is refused. Evidence submitted with Stripe's test
outcomes (`winning_evidence`, `losing_evidence`) has the worker decide the dispute."""

import subprocess
import sys

import pytest
import stripe

from tests.support.accounts import TestAccount, create_account
from tests.support.platform import RunningPlatform
from tests.support.waiting import wait_for

RETURN_URL = "https://shop.example/return"
DISPUTE_FEE = 1500


def _pay(client: stripe.StripeClient, payment_method: str, amount: int) -> stripe.PaymentIntent:
    intent = client.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "usd",
            "payment_method": payment_method,
            "confirm": True,
            "return_url": RETURN_URL,
        }
    )
    assert intent.status == "succeeded"
    return intent


def _dispute_of(client: stripe.StripeClient, charge_id: str) -> stripe.Dispute:
    found: list[stripe.Dispute] = []

    def opened() -> bool:
        found[:] = client.v1.disputes.list(params={"charge": charge_id}).data
        return bool(found)

    wait_for(opened, 30, lambda: f"no dispute of {charge_id} was opened")
    (dispute,) = found
    return dispute


def _balance(client: stripe.StripeClient, kind: str) -> int:
    balance = client.v1.balance.retrieve()
    return sum(entry.amount for entry in getattr(balance, kind) if entry.currency == "usd")


def test_a_payment_with_the_dispute_card_is_disputed_and_its_money_taken_back(
    client: stripe.StripeClient, platform: RunningPlatform
) -> None:
    intent = _pay(client, "pm_card_createDispute", 5000)
    charge_id = str(intent.latest_charge)
    dispute = _dispute_of(client, charge_id)

    assert dispute.id.startswith("dp_")
    assert dispute.object == "dispute"
    assert (dispute.amount, dispute.currency) == (5000, "usd")
    assert (dispute.charge, dispute.payment_intent) == (charge_id, intent.id)
    assert (dispute.reason, dispute.status) == ("fraudulent", "needs_response")
    assert dispute.is_charge_refundable is False
    assert dispute.livemode is False
    assert dispute.metadata.to_dict() == {}
    details = dispute.evidence_details
    assert details.due_by is not None
    assert 7 * 86400 <= details.due_by - dispute.created <= 21 * 86400
    assert (details.has_evidence, details.past_due, details.submission_count) == (False, False, 0)
    assert dispute.evidence.product_description is None
    assert dispute.evidence.receipt is None
    # Fields of Stripe's dispute that stripe-python reads: the card, and the Visa network's
    # code of card-absent fraud.
    assert dispute.network_reason_code == "10.4"
    card = dispute.payment_method_details
    assert card is not None
    assert card.type == "card"
    assert card.card is not None
    assert (card.card.brand, card.card.network) == ("visa", "visa")
    assert (card.card.case_type, card.card.network_reason_code) == ("chargeback", "10.4")
    assert dispute.enhanced_eligibility_types == []
    assert dispute.intended_submission_method is None
    assert dispute.evidence.appeal is None
    assert dispute.evidence.enhanced_evidence.to_dict() == {}
    assert details.enhanced_eligibility.to_dict() == {}
    assert details.submission_method == "not_submitted"
    (withdrawal,) = dispute.balance_transactions
    assert isinstance(withdrawal, stripe.BalanceTransaction)
    assert (withdrawal.type, withdrawal.reporting_category) == ("adjustment", "dispute")
    assert (withdrawal.amount, withdrawal.fee, withdrawal.net) == (
        -5000,
        DISPUTE_FEE,
        -5000 - DISPUTE_FEE,
    )
    assert withdrawal.source == dispute.id

    charge = client.v1.charges.retrieve(charge_id)
    assert charge.disputed is True
    assert charge.status == "succeeded"
    assert client.v1.disputes.retrieve(dispute.id).to_dict() == dispute.to_dict()

    # The dispute takes its amount and fee from the available balance at once; the charge's
    # net waits in pending.
    assert _balance(client, "available") == -5000 - DISPUTE_FEE
    listed = client.v1.balance_transactions.list(params={"type": "adjustment"}).data
    assert [t.id for t in listed] == [withdrawal.id]

    events = client.v1.events.list(params={"type": "charge.dispute.*"}).data
    assert sorted(event.type for event in events) == [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
    ]
    assert {event.data.object.id for event in events} == {dispute.id}

    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.refunds.create(
            params={"payment_intent": intent.id}, options={"idempotency_key": "refund-disputed"}
        )
    assert refused.value.http_status == 400
    assert refused.value.code == "charge_disputed"
    assert refused.value.error is not None
    assert refused.value.error.type == "invalid_request_error"
    # Stored under the key, as the other refusals of a refund by the charge's state are.
    with pytest.raises(stripe.InvalidRequestError) as replayed:
        client.v1.refunds.create(
            params={"payment_intent": intent.id}, options={"idempotency_key": "refund-disputed"}
        )
    assert replayed.value.code == "charge_disputed"
    assert replayed.value.headers is not None
    assert replayed.value.headers.get("Idempotent-Replayed") == "true"

    verify = subprocess.run(
        [sys.executable, "-m", "remit", "ledger", "verify"],
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_the_sdks_dispute_calls_list_retrieve_modify_and_close(
    client: stripe.StripeClient,
    platform: RunningPlatform,
    account: TestAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stripe, "api_base", platform.api_base)
    key = account.secret_key
    first = _pay(client, "pm_card_createDispute", 2000)
    # The token of the same card, made into a payment method as a checkout page makes one.
    tokenized = client.v1.payment_methods.create(
        params={"type": "card", "card": {"token": "tok_createDispute"}}
    )
    second = _pay(client, tokenized.id, 3000)
    older = _dispute_of(client, str(first.latest_charge))
    newer = _dispute_of(client, str(second.latest_charge))

    listed = stripe.Dispute.list(api_key=key, limit=1)
    assert listed.url == "/v1/disputes"
    assert listed.has_more is True
    assert [d.id for d in stripe.Dispute.list(api_key=key).auto_paging_iter()] == [
        newer.id,
        older.id,
    ]
    by_intent = stripe.Dispute.list(api_key=key, payment_intent=first.id)
    assert [d.id for d in by_intent.data] == [older.id]
    assert stripe.Dispute.retrieve(newer.id, api_key=key).charge == second.latest_charge

    staged = stripe.Dispute.modify(
        older.id,
        api_key=key,
        evidence={"product_description": "A blue mug", "customer_name": "Jo Doe"},
        metadata={"case": "1"},
        submit=False,
    )
    assert staged.status == "needs_response"
    assert staged.evidence.product_description == "A blue mug"
    assert staged.evidence_details.has_evidence is True
    assert staged.metadata.to_dict() == {"case": "1"}
    # Metadata alone submits nothing.
    relabeled = stripe.Dispute.modify(older.id, api_key=key, metadata={"case": "2"})
    assert (relabeled.status, relabeled.evidence_details.submission_count) == ("needs_response", 0)
    # Evidence without `submit`: Stripe's default, true, sends it.
    submitted = stripe.Dispute.modify(older.id, api_key=key, evidence={"customer_name": "Jo"})
    assert submitted.status == "under_review"
    assert submitted.evidence.product_description == "A blue mug"
    assert submitted.evidence_details.submission_count == 1
    assert submitted.evidence_details.submission_method == "manual"
    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe.Dispute.close(older.id, api_key=key)
    assert refused.value.code == "dispute_not_closable"

    closed = stripe.Dispute.close(newer.id, api_key=key)
    assert closed.status == "lost"
    types = sorted(
        event.type
        for event in client.v1.events.list(params={"type": "charge.dispute.*", "limit": 20}).data
    )
    assert types.count("charge.dispute.updated") == 3
    assert types.count("charge.dispute.closed") == 1


def test_disputes_are_the_accounts_own_and_errors_take_stripes_shape(
    client: stripe.StripeClient, platform: RunningPlatform
) -> None:
    intent = _pay(client, "pm_card_createDispute", 1000)
    dispute = _dispute_of(client, str(intent.latest_charge))
    other = create_account(platform.core, token=platform.internal_token)
    stranger = stripe.StripeClient(
        other.secret_key, base_addresses={"api": platform.api_base}, max_network_retries=0
    )
    with pytest.raises(stripe.InvalidRequestError) as missing:
        stranger.v1.disputes.retrieve(dispute.id)
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")
    assert stranger.v1.disputes.list().data == []
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.disputes.update(dispute.id, params={"evidence": {"receipt": "file_1"}})
    assert unknown.value.http_status == 400


def test_a_payment_with_an_ordinary_card_opens_no_dispute(client: stripe.StripeClient) -> None:
    intent = _pay(client, "pm_card_visa", 1000)
    disputed = _pay(client, "pm_card_createDispute", 1000)
    # Once the disputed payment's dispute is open, the ordinary one's would have been too.
    _dispute_of(client, str(disputed.latest_charge))
    assert client.v1.disputes.list(params={"charge": str(intent.latest_charge)}).data == []
    assert client.v1.charges.retrieve(str(intent.latest_charge)).disputed is False


def _decided(client: stripe.StripeClient, dispute_id: str) -> stripe.Dispute:
    found: list[stripe.Dispute] = []

    def closed() -> bool:
        found[:] = [client.v1.disputes.retrieve(dispute_id)]
        return found[0].status in ("won", "lost")

    wait_for(closed, 30, lambda: f"dispute {dispute_id} was not decided")
    return found[0]


def _verify_ledger(platform: RunningPlatform) -> None:
    verify = subprocess.run(
        [sys.executable, "-m", "remit", "ledger", "verify"],
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _dispute_events(client: stripe.StripeClient, dispute_id: str) -> list[str]:
    events = client.v1.events.list(params={"type": "charge.dispute.*", "limit": 20}).data
    return sorted(event.type for event in events if event.data.object.id == dispute_id)


def test_winning_evidence_wins_the_dispute_and_reinstates_its_amount_but_not_its_fee(
    client: stripe.StripeClient,
    platform: RunningPlatform,
    account: TestAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stripe, "api_base", platform.api_base)
    intent = _pay(client, "pm_card_createDispute", 4000)
    dispute = _dispute_of(client, str(intent.latest_charge))

    # `submit` not given: Stripe's default, true.
    submitted = stripe.Dispute.modify(
        dispute.id, api_key=account.secret_key, evidence={"uncategorized_text": "winning_evidence"}
    )
    # Stripe's test mode decides shortly after the submission, not in its answer.
    assert submitted.status == "under_review"
    won = _decided(client, dispute.id)

    assert won.status == "won"
    assert won.evidence.uncategorized_text == "winning_evidence"
    assert won.evidence_details.submission_count == 1
    assert won.is_charge_refundable is False
    withdrawal, reinstatement = won.balance_transactions
    assert (withdrawal.reporting_category, withdrawal.net) == ("dispute", -4000 - DISPUTE_FEE)
    assert (reinstatement.type, reinstatement.reporting_category) == (
        "adjustment",
        "dispute_reversal",
    )
    assert (reinstatement.amount, reinstatement.fee, reinstatement.net) == (4000, 0, 4000)
    assert reinstatement.source == dispute.id
    assert reinstatement.status == "available"
    # The amount is back in the available balance; the dispute fee stays taken.
    assert _balance(client, "available") == -DISPUTE_FEE
    assert client.v1.charges.retrieve(str(intent.latest_charge)).disputed is True

    assert _dispute_events(client, dispute.id) == [
        "charge.dispute.closed",
        "charge.dispute.created",
        "charge.dispute.funds_reinstated",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.updated",
    ]
    closed = client.v1.events.list(params={"type": "charge.dispute.closed"}).data
    assert [event.data.object.status for event in closed] == ["won"]

    # A decided dispute takes no more evidence, and cannot be closed.
    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe.Dispute.modify(
            dispute.id, api_key=account.secret_key, evidence={"customer_name": "Jo"}
        )
    assert (refused.value.http_status, refused.value.code) == (400, "dispute_not_updatable")
    with pytest.raises(stripe.InvalidRequestError) as unclosable:
        stripe.Dispute.close(dispute.id, api_key=account.secret_key)
    assert (unclosable.value.http_status, unclosable.value.code) == (400, "dispute_not_closable")
    _verify_ledger(platform)


def test_losing_evidence_loses_the_dispute_and_moves_no_money(
    client: stripe.StripeClient, platform: RunningPlatform
) -> None:
    intent = _pay(client, "pm_card_createDispute", 3000)
    dispute = _dispute_of(client, str(intent.latest_charge))
    submitted = client.v1.disputes.update(
        dispute.id,
        params={"evidence": {"uncategorized_text": "losing_evidence"}, "submit": True},
    )
    assert submitted.status == "under_review"
    lost = _decided(client, dispute.id)

    assert lost.status == "lost"
    assert lost.evidence_details.submission_count == 1
    assert [t.reporting_category for t in lost.balance_transactions] == ["dispute"]
    assert _balance(client, "available") == -3000 - DISPUTE_FEE
    assert _dispute_events(client, dispute.id) == [
        "charge.dispute.closed",
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.updated",
    ]
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.disputes.update(dispute.id, params={"evidence": {"customer_name": "Jo"}})
    assert refused.value.http_status == 400
    _verify_ledger(platform)


def test_other_evidence_leaves_the_dispute_under_review(client: stripe.StripeClient) -> None:
    decided = _pay(client, "pm_card_createDispute", 1000)
    waiting = _pay(client, "pm_card_createDispute", 1000)
    decided_dispute = _dispute_of(client, str(decided.latest_charge))
    waiting_dispute = _dispute_of(client, str(waiting.latest_charge))
    client.v1.disputes.update(
        waiting_dispute.id,
        params={"evidence": {"uncategorized_text": "The customer signed for it."}, "submit": True},
    )
    client.v1.disputes.update(
        decided_dispute.id,
        params={"evidence": {"uncategorized_text": "losing_evidence"}, "submit": True},
    )
    # Once the later submission was decided, the earlier one would have been too.
    assert _decided(client, decided_dispute.id).status == "lost"
    assert client.v1.disputes.retrieve(waiting_dispute.id).status == "under_review"
