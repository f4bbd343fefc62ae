"""The longest a step at the network can take, and what guards it for its whole run."""

import pytest

from remit.config import DEFAULT_IDEMPOTENCY_LEASE_S, DEFAULT_NETWORK_TIMEOUT_S
from remit.payments import key_heartbeat
from remit.payments.step_bounds import (
    authorization_worst_s,
    operation_worst_s,
    settle_worst_s,
)


def test_a_settled_send_takes_at_most_four_sends_three_look_ups_and_the_pauses() -> None:
    assert settle_worst_s(send_s=1.0, look_up_s=100.0) == pytest.approx(4 + 300 + 1.2)


def test_one_step_takes_seven_to_nine_network_timeouts() -> None:
    assert operation_worst_s(10.0) == pytest.approx(71.2)
    # Forwards through the vault (2 s more each), and one more look-up after a vault refusal.
    assert authorization_worst_s(10.0) == pytest.approx(89.2)
    assert authorization_worst_s(120.0) == pytest.approx(969.2)


def test_an_idempotency_key_s_lease_is_shorter_than_one_step_at_the_defaults() -> None:
    """Why a request renews its key's lease while a step runs (`key_heartbeat`)."""
    assert authorization_worst_s(DEFAULT_NETWORK_TIMEOUT_S) > 2 * DEFAULT_IDEMPOTENCY_LEASE_S


@pytest.mark.parametrize("timeout_s", ["0.5", "10", "120"])
def test_a_key_is_renewed_for_longer_than_the_longest_step(
    monkeypatch: pytest.MonkeyPatch, timeout_s: str
) -> None:
    monkeypatch.setenv("REMIT_NETWORK_TIMEOUT_S", timeout_s)
    assert key_heartbeat.longest_step_s() > authorization_worst_s(float(timeout_s))
