"""The time the core's forwards leave the vault, in tests on a loaded machine.

The core gives its call to the vault the network's timeout and a margin of a couple of seconds;
the vault refuses to send when less than the timeout is left (`remit.grpcutil.send_time`). On a
machine loaded by other tests a vault can stall that long before it checks, and a test about
something else then sees a "no time to send" refusal. The refusal itself is tested with its own
deadlines (`test_forward_deadline`, `test_deadlines_passed_on`)."""

import pytest

from remit.payments import network
from remit.payments.send_budget import authorization_needs_s

LOADED_MACHINE_SLACK_S = 30.0


def forwards_leave_a_loaded_vault_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The core's forwards (`GrpcCardNetwork.authorize`) give the vault 30 s more."""
    real = authorization_needs_s
    # Replaced where the core's network client looks it up.
    monkeypatch.setattr(network, "authorization_needs_s", lambda: real() + LOADED_MACHINE_SLACK_S)
