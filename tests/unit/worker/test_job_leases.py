"""A job's lease is sized from the longest step its handler takes, and its run stopped in time."""

import pytest

from remit.payments.step_bounds import operation_worst_s
from remit.webhooks.delivery import DeliverySettings
from remit.webhooks.sender import DEFAULT_TIMEOUT_S
from remit.worker.leases import (
    DEFAULT_JOB_LEASE,
    END_MARGIN_S,
    HANDLER_ALLOWANCE_S,
    JobLease,
    job_lease_for,
)


@pytest.mark.parametrize("network_timeout_s", [0.5, 8.0, 10.0, 14.0, 30.0, 120.0])
def test_a_run_may_last_the_longest_step_and_still_end_before_its_lease(
    network_timeout_s: float,
) -> None:
    step_s = operation_worst_s(network_timeout_s)
    lease = job_lease_for(step_s)
    assert lease.run_budget_s >= step_s + HANDLER_ALLOWANCE_S
    assert lease.lease_s - lease.run_budget_s >= END_MARGIN_S


def test_the_default_timeout_s_void_outlasts_the_old_fixed_lease() -> None:
    """An expiry's void at the default 10 s network timeout can take 71.2 s: a fixed 60 s
    lease let another worker claim the job while it ran."""
    assert job_lease_for(operation_worst_s(10.0)).lease_s > 71.2 + END_MARGIN_S


def test_a_job_lease_outlasts_a_webhook_delivery_and_its_endpoint_slot() -> None:
    slot_s = DeliverySettings().slot_lease.total_seconds()
    assert DEFAULT_JOB_LEASE.lease_s > slot_s
    assert job_lease_for(DEFAULT_TIMEOUT_S).run_budget_s >= DEFAULT_TIMEOUT_S
    assert job_lease_for(operation_worst_s(0.1)).lease_s > slot_s


@pytest.mark.parametrize(("lease_s", "budget_s"), [(10.0, 10.0), (10.0, 12.0), (10.0, 0.0)])
def test_a_run_budget_must_end_before_its_lease(lease_s: float, budget_s: float) -> None:
    with pytest.raises(ValueError, match="budget"):
        JobLease(lease_s=lease_s, run_budget_s=budget_s)
