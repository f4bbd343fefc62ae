"""Radar and 3-D Secure through the official SDK against the real platform.

Every Radar test card and every rule action is driven through stripe-python; the hosted 3-D
Secure page is driven by an HTTP client as a browser would (GET the page, POST a button). No
headless browser is installed on the build machine, so none is used.
"""

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast
from urllib.parse import parse_qs, urlparse

import httpx
import psycopg
import pytest
import stripe

from remit.grpcutil.internal_auth import internal_sync_channel
from remit_api.accounts.v1 import accounts_pb2, accounts_pb2_grpc
from tests.support.accounts import TestAccount, create_account
from tests.support.platform import RunningPlatform
from tests.support.postgres import WorkerDatabases

RETURN_URL = "https://shop.example/return"


def pay(client: stripe.StripeClient, payment_method: str, amount: int = 2000, **extra: Any) -> Any:
    params: dict[str, Any] = {
        "amount": amount,
        "currency": "usd",
        "payment_method": payment_method,
        "confirm": True,
        "return_url": RETURN_URL,
        **extra,
    }
    return client.v1.payment_intents.create(params=cast(Any, params))


def add_rule(client: stripe.StripeClient, rule: str) -> dict[str, Any]:
    response = client.raw_request("post", "/v1/radar/rules", rule=rule)
    body: dict[str, Any] = json.loads(response.body)
    return body


def blocked(client: stripe.StripeClient, payment_method: str, amount: int = 2000) -> Any:
    with pytest.raises(stripe.CardError) as raised:
        pay(client, payment_method, amount)
    return raised.value


def answer_challenge(url: str, outcome: str) -> httpx.Response:
    """What the cardholder's browser does: open the page, press a button."""
    with httpx.Client(timeout=30) as browser:
        page = browser.get(url)
        assert page.status_code == 200
        assert "Complete authentication" in page.text
        assert page.headers["cache-control"] == "no-store"
        return browser.post(url, data={"outcome": outcome})


def test_the_always_blocked_card_is_blocked_before_the_network_as_fraudulent(
    client: stripe.StripeClient,
) -> None:
    error = blocked(client, "pm_card_chargeDeclinedFraudulent")
    assert (error.http_status, error.code) == (402, "card_declined")
    assert error.error is not None
    assert error.error.decline_code == "fraudulent"
    charge = client.v1.charges.retrieve(error.error.charge or "")
    assert charge.outcome is not None
    assert (charge.outcome.type, charge.outcome.network_status, charge.outcome.risk_level) == (
        "blocked",
        "not_sent_to_network",
        "highest",
    )
    assert charge.outcome.risk_score == 99
    assert charge.status == "failed"


def test_the_always_blocked_card_stays_blocked_even_when_an_allow_rule_matches(
    client: stripe.StripeClient,
) -> None:
    add_rule(client, "Allow if :amount_in_usd: > 0")
    error = blocked(client, "pm_card_chargeDeclinedFraudulent")
    assert error.error is not None
    assert error.error.decline_code == "fraudulent"


def test_repeated_payments_with_an_ordinary_test_card_stay_normal_risk_and_rules_still_apply(
    client: stripe.StripeClient,
) -> None:
    """pm_card_visa is documented to succeed: ten $50 payments in a row are not card testing to
    the model (its score stays in the normal band), while a velocity rule still sees them."""
    for _ in range(10):
        intent = pay(client, "pm_card_visa", amount=5000)
        assert intent.status == "succeeded"
    charge = client.v1.charges.retrieve(str(intent.latest_charge))
    assert charge.outcome is not None
    assert (charge.outcome.type, charge.outcome.risk_level) == ("authorized", "normal")
    rule = add_rule(client, "Block if :total_charges_per_card_number_daily: > 10")
    error = blocked(client, "pm_card_visa", amount=5000)
    assert error.error is not None
    refused = client.v1.charges.retrieve(error.error.charge or "")
    assert refused.outcome is not None
    assert (refused.outcome.reason, refused.outcome.rule) == ("rule", rule["id"])


def test_a_charge_an_allow_rule_authorized_gives_the_reason_rule(
    client: stripe.StripeClient,
) -> None:
    """Stripe: charges authorized, blocked, or placed in review by custom rules have the reason
    `rule`; one authorized without a rule has none."""
    plain = client.v1.charges.retrieve(pay(client, "pm_card_visa").latest_charge)
    assert plain.outcome is not None
    assert (plain.outcome.type, plain.outcome.reason, plain.outcome.rule) == (
        "authorized",
        None,
        None,
    )
    rule = add_rule(client, "Allow if :amount_in_usd: > 0")
    allowed = client.v1.charges.retrieve(pay(client, "pm_card_visa").latest_charge)
    assert allowed.outcome is not None
    assert (allowed.outcome.type, allowed.outcome.reason, allowed.outcome.rule) == (
        "authorized",
        "rule",
        rule["id"],
    )


def test_the_highest_risk_card_is_blocked_unless_an_allow_rule_trusts_it(
    client: stripe.StripeClient,
) -> None:
    error = blocked(client, "pm_card_riskLevelHighest")
    assert error.error is not None
    charge = client.v1.charges.retrieve(error.error.charge or "")
    assert charge.outcome is not None
    assert (charge.outcome.type, charge.outcome.reason, charge.outcome.risk_level) == (
        "blocked",
        "highest_risk_level",
        "highest",
    )
    assert charge.payment_method_details is not None
    assert charge.payment_method_details.card is not None
    fingerprint = charge.payment_method_details.card.fingerprint
    assert fingerprint
    trusted = client.v1.radar.value_lists.create(
        params={"alias": "trusted", "name": "Trusted cards", "item_type": "card_fingerprint"}
    )
    client.v1.radar.value_list_items.create(params={"value_list": trusted.id, "value": fingerprint})
    rule = add_rule(client, "Allow if :card_fingerprint: in @trusted")
    intent = pay(client, "pm_card_riskLevelHighest")
    assert intent.status == "succeeded"
    allowed = client.v1.charges.retrieve(intent.latest_charge)
    assert allowed.outcome is not None
    assert (allowed.outcome.type, allowed.outcome.risk_level) == ("authorized", "highest")
    assert (allowed.outcome.reason, allowed.outcome.rule) == ("rule", rule["id"])
    # Expandable, as Stripe's is: the rule that decided, its action and predicate.
    expanded = client.v1.charges.retrieve(intent.latest_charge, params={"expand": ["outcome.rule"]})
    assert expanded.outcome is not None
    shown: Any = expanded.outcome.rule
    assert (shown.id, shown.action, shown.predicate) == (
        rule["id"],
        "allow",
        ":card_fingerprint: in @trusted",
    )
    # A rule deleted since stays named by its id, and the charge is still shown.
    client.raw_request("delete", f"/v1/radar/rules/{rule['id']}")
    after = client.v1.charges.retrieve(intent.latest_charge, params={"expand": ["outcome.rule"]})
    assert after.outcome is not None
    assert after.outcome.rule == rule["id"]


def test_a_fingerprint_trusted_in_one_account_trusts_nothing_in_another(
    client: stripe.StripeClient, platform: RunningPlatform
) -> None:
    """A card's fingerprint is its account's own: the same card in another account has
    another, so a list of one account's fingerprints matches its own payments alone."""
    error = blocked(client, "pm_card_riskLevelHighest")
    assert error.error is not None
    ours = _fingerprint(client, error.error.charge or "")
    trusted = client.v1.radar.value_lists.create(
        params={"alias": "trusted", "name": "Trusted cards", "item_type": "card_fingerprint"}
    )
    client.v1.radar.value_list_items.create(params={"value_list": trusted.id, "value": ours})
    add_rule(client, "Allow if :card_fingerprint: in @trusted")
    # Entered again in this account, the card has the same fingerprint: the rule allows it.
    assert pay(client, "pm_card_riskLevelHighest").status == "succeeded"

    other = create_account(platform.core, token=platform.internal_token)
    theirs_client = stripe.StripeClient(
        other.secret_key, base_addresses={"api": platform.api_base}, max_network_retries=0
    )
    their_error = blocked(theirs_client, "pm_card_riskLevelHighest")
    assert their_error.error is not None
    theirs = _fingerprint(theirs_client, their_error.error.charge or "")
    assert theirs != ours
    # The other account trusting this account's fingerprint trusts nothing of its own.
    their_list = theirs_client.v1.radar.value_lists.create(
        params={"alias": "trusted", "name": "Trusted cards", "item_type": "card_fingerprint"}
    )
    theirs_client.v1.radar.value_list_items.create(
        params={"value_list": their_list.id, "value": ours}
    )
    add_rule(theirs_client, "Allow if :card_fingerprint: in @trusted")
    still = blocked(theirs_client, "pm_card_riskLevelHighest")
    assert still.error is not None
    charge = theirs_client.v1.charges.retrieve(still.error.charge or "")
    assert charge.outcome is not None
    assert (charge.outcome.type, charge.outcome.reason) == ("blocked", "highest_risk_level")


def _fingerprint(client: stripe.StripeClient, charge_id: str) -> str:
    charge = client.v1.charges.retrieve(charge_id)
    assert charge.payment_method_details is not None
    assert charge.payment_method_details.card is not None
    fingerprint = charge.payment_method_details.card.fingerprint
    assert fingerprint
    return fingerprint


def test_the_elevated_risk_card_is_authorized_with_an_elevated_risk_level(
    client: stripe.StripeClient,
) -> None:
    intent = pay(client, "pm_card_riskLevelElevated")
    assert intent.status == "succeeded"
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert charge.outcome is not None
    assert (charge.outcome.type, charge.outcome.risk_level) == ("authorized", "elevated")
    assert charge.outcome.risk_score is not None
    assert 65 <= charge.outcome.risk_score < 75


def test_a_review_rule_authorizes_and_opens_a_review_that_approval_closes(
    client: stripe.StripeClient,
) -> None:
    rule = add_rule(client, "Review if :risk_level: = 'elevated'")
    intent = pay(client, "pm_card_riskLevelElevated", capture_method="manual")
    assert intent.status == "requires_capture"
    assert isinstance(intent.review, str)
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert charge.outcome is not None
    assert (charge.outcome.type, charge.outcome.rule) == ("manual_review", rule["id"])
    assert charge.review == intent.review
    review = client.v1.reviews.retrieve(intent.review)
    assert (review.open, review.reason, review.opened_reason) == (True, "rule", "rule")
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.capture(intent.id)
    approved = client.v1.reviews.approve(intent.review)
    assert (approved.open, approved.closed_reason, approved.reason) == (
        False,
        "approved",
        "approved",
    )
    assert client.v1.payment_intents.capture(intent.id).status == "succeeded"
    events = client.v1.events.list(params={"type": "review.*"})
    types = sorted(e.type for e in events.data if e.data.object["id"] == intent.review)
    assert types == ["review.closed", "review.opened"]


def test_closing_a_review_refunds_its_captured_payment(client: stripe.StripeClient) -> None:
    add_rule(client, "Review if :amount_in_usd: >= 300")
    intent = pay(client, "pm_card_visa", amount=30000)
    assert intent.status == "succeeded"
    response = client.raw_request(
        "post", f"/v1/reviews/{intent.review}/close", action="refund_as_fraud"
    )
    review = json.loads(response.body)
    assert (review["open"], review["closed_reason"]) == (False, "refunded_as_fraud")
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert charge.refunded is True


def test_a_block_rule_blocks_and_names_itself_in_the_outcome(client: stripe.StripeClient) -> None:
    rule = add_rule(client, "Block if :amount_in_usd: > 1000")
    assert pay(client, "pm_card_visa", amount=100000).status == "succeeded"
    error = blocked(client, "pm_card_visa", amount=100001)
    assert error.error is not None
    assert error.error.decline_code == "fraudulent"
    charge = client.v1.charges.retrieve(error.error.charge or "")
    assert charge.outcome is not None
    assert (charge.outcome.type, charge.outcome.reason, charge.outcome.rule) == (
        "blocked",
        "rule",
        rule["id"],
    )


def test_a_3ds_rule_sends_the_buyer_to_the_challenge_and_completing_it_pays(
    client: stripe.StripeClient,
) -> None:
    add_rule(client, "Request 3D Secure if :amount_in_usd: > 500")
    intent = pay(client, "pm_card_visa", amount=60000)
    assert intent.status == "requires_action"
    assert intent.next_action is not None
    assert intent.next_action.type == "redirect_to_url"
    redirect = intent.next_action.redirect_to_url
    assert redirect is not None
    assert redirect.return_url == RETURN_URL
    answered = answer_challenge(redirect.url or "", "succeed")
    assert answered.status_code == 303
    location = urlparse(answered.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == RETURN_URL
    assert parse_qs(location.query)["payment_intent"] == [intent.id]
    paid = client.v1.payment_intents.retrieve(intent.id)
    assert paid.status == "succeeded"
    charge = client.v1.charges.retrieve(str(paid.latest_charge))
    assert charge.payment_method_details is not None
    assert charge.payment_method_details.card is not None
    secure = charge.payment_method_details.card.three_d_secure
    assert secure is not None
    assert (secure.result, secure.authentication_flow) == ("authenticated", "challenge")


@pytest.mark.parametrize(
    "payment_method",
    ["pm_card_authenticationRequired", "pm_card_threeDSecure2Required"],
)
def test_a_3ds_card_requires_action_and_a_failed_challenge_needs_a_new_payment_method(
    client: stripe.StripeClient, payment_method: str
) -> None:
    intent = pay(client, payment_method)
    assert intent.status == "requires_action"
    answered = answer_challenge(intent.next_action.redirect_to_url.url, "fail")
    assert answered.status_code == 303
    failed = client.v1.payment_intents.retrieve(intent.id)
    assert failed.status == "requires_payment_method"
    assert failed.last_payment_error is not None
    assert failed.last_payment_error.code == "payment_intent_authentication_failure"
    again = answer_challenge_again(intent.next_action.redirect_to_url.url)
    assert "failed" in again


def answer_challenge_again(url: str) -> str:
    with httpx.Client(timeout=30) as browser:
        return browser.get(url).text


def test_a_3ds_card_with_manual_capture_waits_for_capture_after_authentication(
    client: stripe.StripeClient,
) -> None:
    intent = pay(client, "pm_card_threeDSecure2Required", capture_method="manual")
    assert intent.status == "requires_action"
    answer_challenge(intent.next_action.redirect_to_url.url, "succeed")
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_capture"


def test_manual_confirmation_returns_to_requires_confirmation_then_pays_on_confirm(
    client: stripe.StripeClient,
) -> None:
    intent = pay(client, "pm_card_authenticationRequiredOnSetup", confirmation_method="manual")
    assert intent.status == "requires_action"
    answer_challenge(intent.next_action.redirect_to_url.url, "succeed")
    waiting = client.v1.payment_intents.retrieve(intent.id)
    assert waiting.status == "requires_confirmation"
    confirmed = client.v1.payment_intents.confirm(intent.id, params={"return_url": RETURN_URL})
    assert confirmed.status == "succeeded"
    assert confirmed.latest_charge == intent.latest_charge


def test_a_confirmation_after_authentication_clears_the_charges_receipt_email_and_shipping(
    client: stripe.StripeClient,
) -> None:
    """A manually confirmed intent goes on with the charge its 3-D Secure attempt made: the
    confirmation's `receipt_email=` and `shipping=` clear that charge's copies too."""
    intent = pay(
        client,
        "pm_card_authenticationRequiredOnSetup",
        confirmation_method="manual",
        receipt_email="jenny@example.com",
        shipping={"name": "Jenny Rosen", "address": {"line1": "2 Rue Royale"}},
    )
    assert intent.status == "requires_action"
    answer_challenge(intent.next_action.redirect_to_url.url, "succeed")
    assert client.v1.charges.retrieve(intent.latest_charge).receipt_email == "jenny@example.com"
    confirmed = client.v1.payment_intents.confirm(
        intent.id, params={"return_url": RETURN_URL, "receipt_email": "", "shipping": ""}
    )
    assert (confirmed.status, confirmed.receipt_email, confirmed.shipping) == (
        "succeeded",
        None,
        None,
    )
    assert confirmed.latest_charge == intent.latest_charge
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.receipt_email, charge.shipping) == (None, None)


def test_error_on_requires_action_fails_instead_of_asking_for_authentication(
    client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.CardError) as raised:
        # Not with automatic payment methods (from 2023-08-16): they are turned off.
        pay(
            client,
            "pm_card_authenticationRequired",
            error_on_requires_action=True,
            automatic_payment_methods={"enabled": False},
        )
    assert raised.value.code == "authentication_required"


def test_the_challenge_page_needs_the_exact_unguessable_id(platform: RunningPlatform) -> None:
    with httpx.Client(timeout=10) as browser:
        wrong = browser.get(f"{platform.api_base}/three_d_secure/acct_x/tdsc_{'A' * 24}")
        assert wrong.status_code == 404
        posted = browser.post(
            f"{platform.api_base}/three_d_secure/acct_x/tdsc_{'A' * 24}",
            data={"outcome": "succeed"},
        )
        assert posted.status_code == 404


def test_rules_and_lists_are_managed_over_the_api_and_a_broken_rule_is_refused(
    client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.raw_request("post", "/v1/radar/rules", action="block", predicate=":nope: > 1")
    assert raised.value.param == "predicate"
    with pytest.raises(stripe.InvalidRequestError):
        add_rule(client, "Block if :card_country: in @missing")
    blocklist = client.v1.radar.value_lists.create(
        params={"alias": "blocked_countries", "name": "Countries", "item_type": "country"}
    )
    item = client.v1.radar.value_list_items.create(
        params={"value_list": blocklist.id, "value": "ru"}
    )
    assert item.value == "RU"
    rule = add_rule(client, "Block if :ip_country: in @blocked_countries")
    listed = json.loads(client.raw_request("get", "/v1/radar/rules").body)
    assert [r["id"] for r in listed["data"]] == [rule["id"]]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.radar.value_lists.delete(blocklist.id)
    error = blocked_with_metadata(client, {"ip_address": "203.0.113.9", "ip_country": "ru"})
    assert error.error is not None
    assert error.error.decline_code == "fraudulent"
    client.raw_request("delete", f"/v1/radar/rules/{rule['id']}")
    assert client.v1.radar.value_lists.delete(blocklist.id).deleted is True


def blocked_with_metadata(client: stripe.StripeClient, metadata: dict[str, str]) -> Any:
    with pytest.raises(stripe.CardError) as raised:
        pay(client, "pm_card_visa", metadata=metadata)
    return raised.value


def remit_cli(platform: RunningPlatform, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "remit", *args],
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_cli_adds_lists_and_removes_rules_that_payments_then_obey(
    platform: RunningPlatform, account: TestAccount, client: stripe.StripeClient
) -> None:
    key = ("--api-key", account.secret_key)
    bad = remit_cli(platform, "radar", "rules", "add", "Block if :risk_score >", *key)
    assert bad.returncode != 0
    assert "invalid rule" in bad.stderr
    added = remit_cli(platform, "radar", "rules", "add", "Block if :amount_in_usd: >= 42", *key)
    assert added.returncode == 0, added.stderr
    rule = json.loads(added.stdout)
    assert (rule["action"], rule["predicate"]) == ("block", ":amount_in_usd: >= 42")
    listed = remit_cli(platform, "radar", "rules", "list", *key)
    assert listed.stdout.split("\t")[:3] == ["0", rule["id"], "block"]
    error = blocked(client, "pm_card_visa", amount=4200)
    assert error.error is not None
    assert error.error.decline_code == "fraudulent"
    removed = remit_cli(platform, "radar", "rules", "remove", rule["id"], *key)
    assert json.loads(removed.stdout) == {"id": rule["id"], "object": "rule", "deleted": True}
    assert pay(client, "pm_card_visa", amount=4200).status == "succeeded"
    made = remit_cli(platform, "radar", "lists", "create", "vip", "--type", "email", *key)
    value_list = json.loads(made.stdout)
    item = remit_cli(platform, "radar", "lists", "add", value_list["id"], "a@b.example", *key)
    assert json.loads(item.stdout)["value"] == "a@b.example"
    assert "@vip" in remit_cli(platform, "radar", "lists", "list", *key).stdout


def _key_id(platform: RunningPlatform, secret_key: str) -> str:
    with internal_sync_channel(platform.core.target, platform.internal_access) as channel:
        reply = accounts_pb2_grpc.AccountsServiceStub(channel).AuthenticateApiKey(
            accounts_pb2.AuthenticateApiKeyRequest(key=secret_key), timeout=10
        )
    return reply.key_id


def test_the_history_says_which_key_changed_each_rule_and_list_over_the_api_or_the_cli(
    platform: RunningPlatform, account: TestAccount, client: stripe.StripeClient
) -> None:
    key = ("--api-key", account.secret_key)
    rule = add_rule(client, "Block if :amount_in_usd: >= 42")
    client.raw_request("post", f"/v1/radar/rules/{rule['id']}", predicate=":amount_in_usd: > 50")
    vips = client.v1.radar.value_lists.create(
        params={"alias": "vips", "name": "VIPs", "item_type": "email"}
    )
    for _ in range(2):  # a retry replays the add: one change
        client.v1.radar.value_list_items.create(
            params={"value_list": vips.id, "value": "ada@example.com"},
            options={"idempotency_key": "add-ada"},
        )
    removed = remit_cli(platform, "radar", "rules", "remove", rule["id"], *key)
    assert removed.returncode == 0, removed.stderr

    printed = remit_cli(platform, "radar", "history", *key)
    assert printed.returncode == 0, printed.stderr
    lines = [line.split("\t") for line in printed.stdout.splitlines()]
    key_id = _key_id(platform, account.secret_key)
    assert [line[2:7] for line in lines] == [
        [key_id, "deleted", "rule", rule["id"], "v2"],
        [key_id, "created", "radar.value_list_item", lines[1][5], ""],
        [key_id, "created", "radar.value_list", vips.id, ""],
        [key_id, "updated", "rule", rule["id"], "v2"],
        [key_id, "created", "rule", rule["id"], "v1"],
    ]
    assert account.secret_key not in printed.stdout
    only_the_list = remit_cli(platform, "radar", "history", "--object", vips.id, *key)
    assert [line.split("\t")[4] for line in only_the_list.stdout.splitlines()] == [
        "radar.value_list_item",
        "radar.value_list",
    ]


def test_a_list_and_its_items_name_the_key_that_created_them(
    platform: RunningPlatform, account: TestAccount, client: stripe.StripeClient
) -> None:
    # Stripe names the user who created a list or added an item; remit's callers are API keys.
    key_id = _key_id(platform, account.secret_key)
    vips = client.v1.radar.value_lists.create(
        params={"alias": "vips", "name": "VIPs", "item_type": "email"}
    )
    item = client.v1.radar.value_list_items.create(
        params={"value_list": vips.id, "value": "ada@example.com"}
    )
    assert (vips.created_by, item.created_by) == (key_id, key_id)
    fetched = client.v1.radar.value_lists.retrieve(vips.id)
    assert fetched.created_by == key_id
    assert [i.created_by for i in fetched.list_items.data] == [key_id]
    key = ("--api-key", account.secret_key)
    made = remit_cli(platform, "radar", "lists", "create", "by_cli", "--type", "email", *key)
    assert json.loads(made.stdout)["created_by"] == key_id


# --- Idempotency-Key ----------------------------------------------------------------------
# stripe-python resends a POST whose answer was lost with the same key: the resend must answer
# as the first time, not add a second rule (which would shift every later rule down a place)
# or refuse an alias or value the first attempt already added.


def _replayed(response: stripe.StripeResponse | None) -> bool:
    assert response is not None
    return response.headers.get("Idempotent-Replayed") == "true"


def _rule_ids(client: stripe.StripeClient) -> list[str]:
    listed = json.loads(client.raw_request("get", "/v1/radar/rules").body)
    return [r["id"] for r in listed["data"]]


def test_a_rule_created_twice_with_one_key_is_one_rule(client: stripe.StripeClient) -> None:
    def create(rule: str) -> stripe.StripeResponse:
        response: stripe.StripeResponse = client.raw_request(
            "post", "/v1/radar/rules", rule=rule, idempotency_key="rule"
        )
        return response

    first = create("Block if :amount_in_usd: > 900")
    again = create("Block if :amount_in_usd: > 900")
    rule = json.loads(first.body)
    assert json.loads(again.body)["id"] == rule["id"]
    assert (_replayed(first), _replayed(again)) == (False, True)
    assert _rule_ids(client) == [rule["id"]]
    with pytest.raises(stripe.IdempotencyError) as mismatch:
        create("Block if :amount_in_usd: > 800")
    assert mismatch.value.http_status == 400
    assert _rule_ids(client) == [rule["id"]]


def test_a_rule_update_retried_with_its_key_replays_and_undoes_no_later_change(
    client: stripe.StripeClient,
) -> None:
    rule = add_rule(client, "Review if :amount_in_usd: > 900")
    path = f"/v1/radar/rules/{rule['id']}"
    updated = client.raw_request("post", path, action="block", idempotency_key="rule-upd")
    client.raw_request("post", path, action="allow")
    replayed = client.raw_request("post", path, action="block", idempotency_key="rule-upd")
    assert json.loads(updated.body)["action"] == json.loads(replayed.body)["action"] == "block"
    assert _replayed(replayed)
    assert json.loads(client.raw_request("get", path).body)["action"] == "allow"
    with pytest.raises(stripe.IdempotencyError):
        client.raw_request("post", path, action="review", idempotency_key="rule-upd")


def test_a_value_list_created_twice_with_one_key_is_one_value_list(
    client: stripe.StripeClient,
) -> None:
    def create_list(name: str) -> stripe.radar.ValueList:
        return client.v1.radar.value_lists.create(
            params={"alias": "vips", "name": name, "item_type": "email"},
            options={"idempotency_key": "vl"},
        )

    first = create_list("VIPs")
    again = create_list("VIPs")
    assert (again.id, _replayed(first.last_response), _replayed(again.last_response)) == (
        first.id,
        False,
        True,
    )
    assert [v.id for v in client.v1.radar.value_lists.list().data] == [first.id]
    with pytest.raises(stripe.IdempotencyError):
        create_list("Very important")


def test_a_second_value_list_of_an_alias_is_a_400_naming_the_alias(
    client: stripe.StripeClient,
) -> None:
    """The core refuses it as ALREADY_EXISTS; the REST API answers Stripe's invalid parameter."""
    client.v1.radar.value_lists.create(params={"alias": "vips", "name": "VIPs"})
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.radar.value_lists.create(params={"alias": "vips", "name": "Others"})
    assert (refused.value.http_status, refused.value.code, refused.value.param) == (
        400,
        "parameter_invalid",
        "alias",
    )
    assert refused.value.user_message == "A value list with the alias 'vips' already exists."


def test_a_value_list_item_added_twice_with_one_key_is_added_once(
    client: stripe.StripeClient,
) -> None:
    vips = client.v1.radar.value_lists.create(
        params={"alias": "vips", "name": "VIPs", "item_type": "email"}
    )

    def add(value: str) -> stripe.radar.ValueListItem:
        return client.v1.radar.value_list_items.create(
            params={"value_list": vips.id, "value": value}, options={"idempotency_key": "vli"}
        )

    item = add("ada@example.com")
    item_again = add("ada@example.com")
    assert (item_again.id, _replayed(item_again.last_response)) == (item.id, True)
    items = client.v1.radar.value_list_items.list(params={"value_list": vips.id})
    assert [i.id for i in items.data] == [item.id]
    with pytest.raises(stripe.IdempotencyError):
        add("grace@example.com")


CONCURRENT_ADDS = 8


def _until_adds_wait_on_the_lock(core_url: str, adds: int) -> None:
    """Until `adds` sessions of the core wait to insert an item (on the test's table lock)."""
    with psycopg.connect(core_url, autocommit=True) as watcher:
        for _ in range(1500):
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query ILIKE 'INSERT INTO radar_value_list_items%%'"
            ).fetchone()
            if waiting is not None and waiting[0] >= adds:
                return
            time.sleep(0.02)
    raise AssertionError(f"never {adds} adds waiting to insert")


def test_concurrent_adds_of_one_value_add_it_once_and_refuse_the_others_as_stripe_does(
    platform: RunningPlatform,
    account: TestAccount,
    client: stripe.StripeClient,
    databases: WorkerDatabases,
) -> None:
    """Sent at once, each with its own idempotency key, as separate clients would, and held
    by the test at the moment each would insert, so that all of them have looked for the value
    and found none: one item, and every other add is the refusal a duplicate add gets when it
    comes alone."""
    vips = client.v1.radar.value_lists.create(
        params={"alias": "vips", "name": "VIPs", "item_type": "email"}
    )
    # A case-insensitive list: every spelling is the one value.
    spellings = ["ada@example.com", "Ada@Example.com", "ADA@EXAMPLE.COM", "ada@EXAMPLE.com"]

    def add(n: int) -> httpx.Response:
        with httpx.Client(base_url=platform.api_base, timeout=60) as http:
            return http.post(
                "/v1/radar/value_list_items",
                auth=(account.secret_key, ""),
                data={"value_list": vips.id, "value": spellings[n % len(spellings)]},
                headers={"Idempotency-Key": f"add-{n}"},
            )

    core_url = databases.core_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(core_url) as holder:
        # Inserts wait for this lock; the look-ups before them do not.
        holder.execute("LOCK TABLE radar_value_list_items IN SHARE MODE")
        with ThreadPoolExecutor(CONCURRENT_ADDS) as pool:
            sent = [pool.submit(add, n) for n in range(CONCURRENT_ADDS)]
            try:
                _until_adds_wait_on_the_lock(core_url, CONCURRENT_ADDS)
            finally:
                holder.rollback()
            answers = [future.result() for future in sent]

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] + [400] * (CONCURRENT_ADDS - 1), [a.text for a in answers]
    items = client.v1.radar.value_list_items.list(params={"value_list": vips.id})
    (added,) = [answer.json() for answer in answers if answer.status_code == 200]
    assert [item.id for item in items.data] == [added["id"]]

    with pytest.raises(stripe.InvalidRequestError) as alone:
        client.v1.radar.value_list_items.create(
            params={"value_list": vips.id, "value": "ada@example.com"}
        )
    assert (alone.value.http_status, alone.value.param) == (400, "value")
    assert alone.value.user_message == "'ada@example.com' is already in @vips."
    expected = {"type": "invalid_request_error", "code": alone.value.code, "param": "value"}
    for n, refused in enumerate(answers):
        if refused.status_code == 200:
            continue
        error = refused.json()["error"]
        assert {key: error.get(key) for key in expected} == expected
        assert error["message"] == f"{spellings[n % len(spellings)]!r} is already in @vips."


def test_an_approval_retried_with_its_key_replays_and_cannot_approve_another_review(
    client: stripe.StripeClient,
) -> None:
    add_rule(client, "Review if :risk_level: = 'elevated'")
    first, second = (
        pay(client, "pm_card_riskLevelElevated", capture_method="manual") for _ in range(2)
    )
    approved = client.v1.reviews.approve(first.review, options={"idempotency_key": "rvw"})
    again = client.v1.reviews.approve(first.review, options={"idempotency_key": "rvw"})
    assert (again.id, again.closed_reason, _replayed(again.last_response)) == (
        approved.id,
        "approved",
        True,
    )
    with pytest.raises(stripe.IdempotencyError):
        client.v1.reviews.approve(second.review, options={"idempotency_key": "rvw"})
    assert client.v1.reviews.retrieve(second.review).open is True


def test_a_close_retried_with_its_key_replays_and_refunds_once(
    client: stripe.StripeClient,
) -> None:
    add_rule(client, "Review if :amount_in_usd: >= 300")
    intent = pay(client, "pm_card_visa", amount=30000)
    path = f"/v1/reviews/{intent.review}/close"
    closed = client.raw_request("post", path, action="refund_as_fraud", idempotency_key="close")
    again = client.raw_request("post", path, action="refund_as_fraud", idempotency_key="close")
    assert json.loads(again.body) == json.loads(closed.body)
    assert not _replayed(closed)
    assert _replayed(again)
    assert len(client.v1.refunds.list(params={"payment_intent": intent.id}).data) == 1
    with pytest.raises(stripe.IdempotencyError):
        client.raw_request("post", path, action="refund", idempotency_key="close")
    # Under another key (stripe-python makes one for each new request) a second close is
    # refused: the review is closed.
    with pytest.raises(stripe.InvalidRequestError):
        client.raw_request("post", path, action="refund_as_fraud")


def test_a_rule_nested_too_deep_is_refused_as_a_bad_predicate(
    client: stripe.StripeClient, platform: RunningPlatform
) -> None:
    deep = "(" * 330 + ":risk_score: > 1" + ")" * 330
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.raw_request("post", "/v1/radar/rules", action="block", predicate=deep)
    assert raised.value.http_status == 400
    assert raised.value.param == "predicate"
    assert "deep" in str(raised.value.user_message)
    assert "RecursionError" not in platform.log_text()


def pay_with_number(
    platform: RunningPlatform, account: TestAccount, client: stripe.StripeClient, number: str
) -> Any:
    """Stripe.js's way: the browser makes the payment method of the card number with the
    publishable key, the server confirms with it."""
    browser = stripe.StripeClient(
        account.publishable_key, base_addresses={"api": platform.api_base}, max_network_retries=0
    )
    card = {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "739"}
    method = browser.v1.payment_methods.create(params={"type": "card", "card": cast(Any, card)})
    return pay(client, method.id)


def test_an_ordinary_test_number_keeps_succeeding_at_normal_risk_as_its_test_id_does(
    platform: RunningPlatform, account: TestAccount, client: stripe.StripeClient
) -> None:
    """4242 4242 4242 4242 given as a number is pm_card_visa: eight payments in a row are not
    card testing (the model's velocity features alone would block it by the fifth)."""
    for _ in range(8):
        intent = pay_with_number(platform, account, client, "4242424242424242")
        assert intent.status == "succeeded"
    charge = client.v1.charges.retrieve(str(intent.latest_charge))
    assert charge.outcome is not None
    assert (charge.outcome.type, charge.outcome.risk_level) == ("authorized", "normal")


def test_the_declining_test_number_keeps_its_generic_decline(
    platform: RunningPlatform, account: TestAccount, client: stripe.StripeClient
) -> None:
    for _ in range(4):
        with pytest.raises(stripe.CardError) as raised:
            pay_with_number(platform, account, client, "4000000000000002")
        assert raised.value.error is not None
        assert (raised.value.code, raised.value.error.decline_code) == (
            "card_declined",
            "generic_decline",
        )


def test_radars_test_numbers_score_and_block_as_their_test_ids(
    platform: RunningPlatform, account: TestAccount, client: stripe.StripeClient
) -> None:
    def outcome_of_blocked(number: str) -> Any:
        with pytest.raises(stripe.CardError) as raised:
            pay_with_number(platform, account, client, number)
        assert raised.value.error is not None
        return client.v1.charges.retrieve(raised.value.error.charge or "").outcome

    fraudulent = outcome_of_blocked("4100000000000019")
    assert (fraudulent.type, fraudulent.network_status, fraudulent.risk_level) == (
        "blocked",
        "not_sent_to_network",
        "highest",
    )
    assert fraudulent.risk_score == 99
    highest = outcome_of_blocked("4000000000004954")
    assert (highest.type, highest.reason, highest.risk_level) == (
        "blocked",
        "highest_risk_level",
        "highest",
    )
    intent = pay_with_number(platform, account, client, "4000000000009235")
    assert intent.status == "succeeded"
    elevated = client.v1.charges.retrieve(intent.latest_charge).outcome
    assert elevated is not None
    assert (elevated.type, elevated.risk_level) == ("authorized", "elevated")
    assert elevated.risk_score is not None
    assert 65 <= elevated.risk_score < 75


def test_a_test_number_tokenized_or_sent_with_the_payment_scores_as_its_test_id(
    platform: RunningPlatform, client: stripe.StripeClient
) -> None:
    """/v1/tokens and payment_method_data[card][number] (raw card access) as well."""
    account = create_account(platform.core, token=platform.internal_token, raw_card_access=True)
    server = stripe.StripeClient(
        account.secret_key, base_addresses={"api": platform.api_base}, max_network_retries=0
    )
    card = {"number": "4000000000009235", "exp_month": 12, "exp_year": 2034, "cvc": "739"}
    token = server.v1.tokens.create(params={"card": cast(Any, card)})
    by_token = pay_with_data(server, {"type": "card", "card": {"token": token.id}})
    by_number = pay_with_data(server, {"type": "card", "card": card})
    for intent in (by_token, by_number):
        assert intent.status == "succeeded"
        outcome = server.v1.charges.retrieve(intent.latest_charge).outcome
        assert outcome is not None
        assert outcome.risk_level == "elevated"


def pay_with_data(client: stripe.StripeClient, data: dict[str, Any]) -> Any:
    params = {"amount": 2000, "currency": "usd", "payment_method_data": data, "confirm": True,
              "return_url": RETURN_URL}  # fmt: skip
    return client.v1.payment_intents.create(params=cast(Any, params))
