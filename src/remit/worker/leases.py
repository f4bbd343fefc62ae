"""How long a worker's claim holds a job, and how long the job's handler may run within it.

A claim is a lease (`remit.worker.jobs`): once it runs out, another worker claims the job
again, whether or not the first is still at it. Two runs of one job at once would send two
voids of one authorization, skip the job's backoff and use its attempts up twice as fast, and a
job claimed past its attempts would be failed (`fail_exhausted_job`) while an earlier run is
still under way. So the lease is sized from the longest step a handler takes, which moves with
the configured timeouts (an expiry's void settles at the network in up to 7 network timeouts,
`remit.payments.step_bounds`), and each run is stopped before its lease runs out: its budget
is counted from the claim, so that a wait for a database connection before the handler starts
(up to REMIT_DATABASE_POOL_TIMEOUT_S) is spent from it, not added to it.
"""

from dataclasses import dataclass

from remit.worker.jobs import DEFAULT_LEASE_S

# The least a claim holds a job. A webhook delivery's endpoint slot is leased for less
# (`remit.webhooks.delivery.DeliverySettings.slot_lease`, 45 s), so that a dead worker's slot
# is free again before its job is claimed again.
MIN_JOB_LEASE_S = DEFAULT_LEASE_S
# Beyond a handler's longest step: its own database work around it (reads, the row locks it
# waits for, its writes).
HANDLER_ALLOWANCE_S = 10.0
# Between a run's time budget and its lease's end: recording the job's end (or its failure)
# under the claim, once its handler has returned or been stopped.
END_MARGIN_S = 10.0


@dataclass(frozen=True)
class JobLease:
    """How long a claim holds a job (`lease_s`, by the database's clock), and how long after
    the claim its handler may run before it is stopped (`run_budget_s`, less by the time the
    job's end takes to record)."""

    lease_s: float
    run_budget_s: float

    def __post_init__(self) -> None:
        if not 0 < self.run_budget_s < self.lease_s:
            raise ValueError("a run's budget must be positive and end before its lease does")


def job_lease_for(longest_step_s: float) -> JobLease:
    """The lease for handlers whose longest step takes at most `longest_step_s`."""
    lease_s = max(MIN_JOB_LEASE_S, longest_step_s + HANDLER_ALLOWANCE_S + END_MARGIN_S)
    return JobLease(lease_s=lease_s, run_budget_s=lease_s - END_MARGIN_S)


# For handlers without a step at the network or another service (and for tests).
DEFAULT_JOB_LEASE = job_lease_for(0.0)


def stop_drain_for(longest_step_s: float) -> float:
    """How long a stopping worker lets the jobs it is running finish, when the longest step of
    those it lets finish takes `longest_step_s`: the step, and the handler's database work
    around it. A job cut off by the stop is run again only once its lease has run out, and a
    webhook delivery cut mid-POST is then sent again, though its receiver may have had it."""
    return longest_step_s + HANDLER_ALLOWANCE_S


# For workers whose jobs take no step at the network (tests, tools).
DEFAULT_STOP_DRAIN_S = stop_drain_for(0.0)
