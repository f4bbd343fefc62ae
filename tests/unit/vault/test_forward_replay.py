"""Which parameters make a forward another operation, and what a recorded answer answers."""

from dataclasses import replace

import pytest

from remit.vault.domain import ForwardRequest, StoredCredential
from remit.vault.forward_replay import RecordedForward, request_digest

TOKEN = "vtok_1"
REQUEST = ForwardRequest(
    destination="acquirer",
    amount_minor=2000,
    currency="usd",
    reference="ch_1",
    capture=True,
    purpose="payment_intent.confirm pi_1",
    requester="core",
)
DIGEST = request_digest(TOKEN, REQUEST)

OTHER_OPERATIONS = {
    "destination": replace(REQUEST, destination="backup"),
    "amount": replace(REQUEST, amount_minor=2001),
    "currency": replace(REQUEST, currency="eur"),
    "capture": replace(REQUEST, capture=False),
    "three_d_secure": replace(REQUEST, three_d_secure_authenticated=True),
    "off_session": replace(REQUEST, stored_credential=StoredCredential(off_session=True)),
    "setup_off_session": replace(
        REQUEST, stored_credential=StoredCredential(setup_off_session=True)
    ),
    "initial_network_transaction_id": replace(
        REQUEST, stored_credential=StoredCredential(initial_network_transaction_id="ntid_1")
    ),
}


def test_the_digest_is_a_sha256_that_depends_on_the_request_alone() -> None:
    assert len(DIGEST) == 32
    assert request_digest(TOKEN, replace(REQUEST)) == DIGEST


@pytest.mark.parametrize("changed", OTHER_OPERATIONS)
def test_each_parameter_of_the_operation_changes_the_digest(changed: str) -> None:
    assert request_digest(TOKEN, OTHER_OPERATIONS[changed]) != DIGEST


def test_another_card_changes_the_digest() -> None:
    assert request_digest("vtok_2", REQUEST) != DIGEST


def test_who_asks_why_and_the_billing_address_do_not() -> None:
    retried = replace(
        REQUEST,
        purpose="completer",
        requester="worker",
        billing_address={"line1": "1 Elsewhere Road"},
    )
    assert request_digest(TOKEN, retried) == DIGEST


def test_a_recorded_answer_answers_the_forward_of_its_digest() -> None:
    recorded = RecordedForward(b"answer", TOKEN, "acquirer", DIGEST)
    assert recorded.answers(TOKEN, "acquirer", DIGEST)
    other = request_digest(TOKEN, OTHER_OPERATIONS["amount"])
    assert not recorded.answers(TOKEN, "acquirer", other)


def test_an_answer_recorded_without_a_digest_answers_any_forward_of_its_card_there() -> None:
    legacy = RecordedForward(b"answer", TOKEN, "acquirer", None)
    other_amount = request_digest(TOKEN, OTHER_OPERATIONS["amount"])
    assert legacy.answers(TOKEN, "acquirer", other_amount)
    assert not legacy.answers("vtok_2", "acquirer", DIGEST)
    assert not legacy.answers(TOKEN, "backup", DIGEST)
