"""The acquirer's pure rules: card numbers, brands, transitions, fees and the fault plan."""

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from remit.acquirer.cards import TEST_CARDS, Brand, Funding, brand_of, luhn_valid, profile_for
from remit.acquirer.domain import (
    Authorization,
    AuthorizationRequest,
    AuthorizationState,
    CardSummary,
    assess_card,
    capture,
    capture_fee_minor,
    refund,
    void,
)
from remit.acquirer.faults import Fault, FaultConfig, FaultPlan
from remit.config import ConfigError
from remit.core.secrets import Secret

NOW = datetime(2031, 3, 14, 12, tzinfo=UTC)


@pytest.mark.parametrize("number", sorted(TEST_CARDS))
def test_every_test_card_number_passes_the_luhn_check(number: str) -> None:
    assert luhn_valid(number)


def test_a_wrong_check_digit_or_a_non_digit_fails_the_luhn_check() -> None:
    assert not luhn_valid("4242424242424241")
    assert not luhn_valid("42424242424242a2")
    assert luhn_valid("79927398713")


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        ("4242424242424242", Brand.VISA),
        ("5555555555554444", Brand.MASTERCARD),
        ("2223003122003222", Brand.MASTERCARD),
        ("378282246310005", Brand.AMEX),
        ("6011111111111117", Brand.DISCOVER),
        ("6555900000604105", Brand.DISCOVER),
        ("3566002020360505", Brand.JCB),
        ("3056930009020004", Brand.DINERS),
        ("36227206271667", Brand.DINERS),
        ("6200000000000005", Brand.UNIONPAY),
        ("6205500000000000004", Brand.UNIONPAY),
        ("9999999999999995", Brand.UNKNOWN),
    ],
)
def test_the_brand_comes_from_the_leading_digits(number: str, brand: Brand) -> None:
    assert brand_of(number) is brand


def _authorization(
    *, authorized: int = 1000, captured: int = 0, refunded: int = 0,
    state: AuthorizationState = AuthorizationState.OPEN,
) -> Authorization:  # fmt: skip
    return Authorization(
        id="auth_x",
        merchant_id="acct_x",
        currency="usd",
        authorized_minor=authorized,
        captured_minor=captured,
        refunded_minor=refunded,
        state=state,
        card=CardSummary(Brand.VISA, Funding.CREDIT, "424242", "4242", 12, 2034),
        created_at=NOW,
        updated_at=NOW,
    )


def test_a_partial_capture_releases_the_rest_unless_kept_open() -> None:
    closed = capture(_authorization(), 600, keep_open=False, now=NOW)
    assert closed.refusal is None
    assert closed.authorization.state is AuthorizationState.CLOSED
    assert closed.authorization.capturable_minor == 0
    # The decision says what the capture released, for its operation to record.
    assert (closed.amount_minor, closed.released_minor) == (600, 400)
    assert closed.authorization.released_minor == 400

    kept = capture(_authorization(), 600, keep_open=True, now=NOW)
    assert kept.authorization.state is AuthorizationState.OPEN
    assert kept.authorization.capturable_minor == 400
    assert (kept.released_minor, kept.authorization.released_minor) == (0, 0)
    last = capture(kept.authorization, 300, keep_open=False, now=NOW)
    assert (last.released_minor, last.authorization.released_minor) == (100, 100)


def test_capturing_everything_closes_the_authorization_even_when_kept_open() -> None:
    full = capture(_authorization(), 1000, keep_open=True, now=NOW)
    assert full.authorization.state is AuthorizationState.CLOSED
    assert (full.released_minor, full.authorization.released_minor) == (0, 0)


def test_a_capture_over_the_capturable_amount_is_refused_and_changes_nothing() -> None:
    before = _authorization(captured=700, state=AuthorizationState.OPEN)
    over = capture(before, 301, keep_open=False, now=NOW)
    assert over.refusal is not None
    assert over.refusal.code == "amount_too_large"
    assert over.authorization == before
    assert over.released_minor == 0


def test_captures_after_a_void_or_a_final_capture_are_refused_with_their_own_codes() -> None:
    voided = capture(_authorization(state=AuthorizationState.VOIDED), 1, keep_open=False, now=NOW)
    closed = capture(
        _authorization(captured=5, state=AuthorizationState.CLOSED), 1, keep_open=False, now=NOW
    )
    assert voided.refusal is not None
    assert voided.refusal.code == "authorization_voided"
    assert closed.refusal is not None
    assert closed.refusal.code == "charge_already_captured"


def test_a_void_releases_only_what_is_still_capturable() -> None:
    released = void(_authorization(captured=300), now=NOW)
    assert released.refusal is None
    assert released.amount_minor == 700
    assert released.released_minor == 700
    assert released.authorization.state is AuthorizationState.VOIDED
    assert released.authorization.released_minor == 700
    again = void(released.authorization, now=NOW)
    assert again.refusal is not None
    assert again.refusal.code == "authorization_voided"
    captured = void(_authorization(captured=1000, state=AuthorizationState.CLOSED), now=NOW)
    assert captured.refusal is not None
    assert captured.refusal.code == "charge_already_captured"


def test_refunds_never_exceed_what_was_captured() -> None:
    auth = _authorization(captured=800, state=AuthorizationState.CLOSED)
    first = refund(auth, 500, now=NOW)
    assert first.refusal is None
    assert first.authorization.refunded_minor == 500
    too_much = refund(first.authorization, 301, now=NOW)
    assert too_much.refusal is not None
    assert too_much.refusal.code == "amount_too_large"
    rest = refund(first.authorization, 300, now=NOW)
    assert rest.refusal is None
    assert rest.authorization.refundable_minor == 0
    done = refund(rest.authorization, 1, now=NOW)
    assert done.refusal is not None
    assert done.refusal.code == "charge_already_refunded"
    uncaptured = refund(_authorization(), 1, now=NOW)
    assert uncaptured.refusal is not None
    assert uncaptured.refusal.code == "charge_not_captured"


@pytest.mark.parametrize(
    ("amount", "fee"),
    [(10_000, 150), (100, 2), (1, 0), (33, 0), (34, 1), (100_000_00, 150_000)],
)
def test_the_capture_fee_is_one_and_a_half_percent_rounded_half_to_even(
    amount: int, fee: int
) -> None:
    # 100 * 1.5% = 1.5 -> 2 (even); 33 -> 0.495 -> 0; 34 -> 0.51 -> 1.
    assert capture_fee_minor(amount) == fee


def test_a_seeded_fault_plan_repeats_exactly_and_honours_the_rates() -> None:
    config = FaultConfig(error_rate=0.2, timeout_rate=0.1, lost_response_rate=0.3, seed=7)
    plan_a, plan_b = FaultPlan(config), FaultPlan(config)
    draws_a = [plan_a.next_fault() for _ in range(2000)]
    draws_b = [plan_b.next_fault() for _ in range(2000)]
    assert draws_a == draws_b
    counts = Counter(draws_a)
    assert 330 < counts[Fault.ERROR] < 470
    assert 140 < counts[Fault.TIMEOUT] < 260
    assert 520 < counts[Fault.LOST_RESPONSE] < 680
    reseeded = FaultPlan(
        FaultConfig(error_rate=0.2, timeout_rate=0.1, lost_response_rate=0.3, seed=8)
    )
    assert [reseeded.next_fault() for _ in range(2000)] != draws_a


def test_fault_settings_are_read_from_the_environment_and_checked() -> None:
    config = FaultConfig.from_env(
        {
            "REMIT_ACQUIRER_LATENCY_MS": "25",
            "REMIT_ACQUIRER_ERROR_RATE": "0.1",
            "REMIT_ACQUIRER_TIMEOUT_RATE": "0.2",
            "REMIT_ACQUIRER_LOST_RESPONSE_RATE": "0.3",
            "REMIT_ACQUIRER_FAULT_SEED": "42",
            "REMIT_ACQUIRER_FAULT_READS": "1",
        }
    )
    assert config == FaultConfig(25, 0.1, 0.2, 0.3, 42, include_reads=True)
    assert not FaultConfig.from_env({}).active
    with pytest.raises(ConfigError, match="REMIT_ACQUIRER_ERROR_RATE"):
        FaultConfig.from_env({"REMIT_ACQUIRER_ERROR_RATE": "lots"})
    with pytest.raises(ConfigError, match="sum to at most 1"):
        FaultConfig.from_env(
            {"REMIT_ACQUIRER_ERROR_RATE": "0.6", "REMIT_ACQUIRER_TIMEOUT_RATE": "0.6"}
        )
    with pytest.raises(ConfigError, match="REMIT_ACQUIRER_LATENCY_MS"):
        FaultConfig.from_env({"REMIT_ACQUIRER_LATENCY_MS": "-1"})


def _off_session(number: str, cited: str | None = "123456789012345") -> AuthorizationRequest:
    return AuthorizationRequest(
        reference="op_renewal",
        card_number=Secret(number),
        exp_month=12,
        exp_year=2034,
        cvc=None,
        amount_minor=1000,
        currency="usd",
        capture=True,
        merchant_id="acct_x",
        billing_line1=None,
        billing_postal_code=None,
        three_d_secure_authenticated=False,
        off_session=True,
        initial_network_transaction_id=cited,
    )


def _setup_of(number: str, *, authenticated: bool = True, setup: bool = True) -> Authorization:
    return replace(
        _authorization(),
        card=CardSummary(Brand.VISA, Funding.CREDIT, number[:6], number[-4:], 12, 2034),
        network_transaction_id="123456789012345",
        three_d_secure_authenticated=authenticated,
        setup_off_session=setup,
    )


@pytest.mark.parametrize(
    ("setup", "approved"),
    [
        (_setup_of("4000002500003155"), True),
        (_setup_of("4000002500003155", authenticated=False), False),
        (_setup_of("4000002500003155", setup=False), False),
        (replace(_setup_of("4000002500003155"), merchant_id="acct_2"), False),
        (_setup_of("4242424242424242"), False),
        (None, False),
    ],
    ids=["authenticated-setup", "unauthenticated", "not-a-setup", "other-merchant",
         "other-card", "none-found"],
)  # fmt: skip
def test_only_an_authenticated_setup_of_the_card_by_the_merchant_waives_authentication(
    setup: Authorization | None, approved: bool
) -> None:
    renewal = _off_session("4000002500003155")
    assert renewal.cites_initial_setup(profile_for("4000002500003155"))
    assessment = assess_card(renewal, profile_for("4000002500003155"), NOW.date(), setup)
    assert assessment.approved is approved
    if not approved:
        assert assessment.decline is not None
        assert assessment.decline.decline_code == "authentication_required"


def test_only_the_setup_card_looks_its_setup_up_and_only_off_session() -> None:
    assert not _off_session("4000002760003184").cites_initial_setup(profile_for("4000002760003184"))
    assert not _off_session("4242424242424242").cites_initial_setup(profile_for("4242424242424242"))
    on_session = replace(_off_session("4000002500003155"), off_session=False)
    assert not on_session.cites_initial_setup(profile_for("4000002500003155"))
    citing_nothing = _off_session("4000002500003155", cited=None)
    assert not citing_nothing.cites_initial_setup(profile_for("4000002500003155"))


def test_the_stored_credential_fields_join_the_fingerprint_only_when_set() -> None:
    plain = replace(_off_session("4000002500003155", cited=None), off_session=False)
    assert not {"off_session", "setup_off_session", "initial_network_transaction_id"} & set(
        plain.fingerprint()
    )
    assert _off_session("4000002500003155").fingerprint()["initial_network_transaction_id"] == (
        "123456789012345"
    )
