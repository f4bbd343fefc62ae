"""Delivery end to end inside one process: real PostgreSQL, real HTTP receivers, stripe-python
verifying every payload, and an injected clock for the retry schedule."""

import itertools
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
import stripe
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.payments.keyed import Done, Keyed, KeyedCall, Replay
from remit.webhooks.delivery import DeliverySettings, outcome_of
from remit.webhooks.domain import (
    MAX_HONOURED_RATE_LIMITS,
    RETRY_GAP_JITTER,
    RETRY_WINDOW,
    DeliveryAttempt,
    EndpointStatus,
    WebhookEndpoint,
    retry_gap,
)
from remit.webhooks.sender import HttpResult
from remit.worker import runner
from remit.worker.jobs import ClaimLostError, Job, complete_job
from tests.integration.webhooks.conftest import Bench, StartReceiver, make_bench
from tests.support.jobs import run_out_job_leases
from tests.support.receiver import Received, Reply

pytestmark = pytest.mark.anyio


def verify(received: Received, secret: str, tolerance: int = 300) -> stripe.Event:
    """stripe-python's own check; tolerance 0 skips only the timestamp age check."""
    event: stripe.Event = stripe.Webhook.construct_event(
        received.body.decode("utf-8"), received.headers["Stripe-Signature"], secret, tolerance
    )
    return event


def signed_at(received: Received) -> int:
    return int(received.headers["Stripe-Signature"].split(",")[0].removeprefix("t="))


def within_its_jitter(actual: timedelta, gap: timedelta) -> bool:
    """A gap of the retry schedule as made: the schedule's gap, stretched by at most its
    jitter (never shortened)."""
    return gap <= actual <= gap * (1 + RETRY_GAP_JITTER)


def gaps_between(attempts: list[DeliveryAttempt]) -> list[timedelta]:
    return [b.attempted_at - a.attempted_at for a, b in itertools.pairwise(attempts)]


def assert_gaps_follow_the_schedule(gaps: list[timedelta], first_step: int = 1) -> None:
    """Each gap is the schedule's for its step (`first_step` for the first), within its
    jitter."""
    for step, gap in enumerate(gaps, start=first_step):
        assert within_its_jitter(gap, retry_gap(step)), (step, gap)


async def test_the_stripe_package_verifies_a_delivered_event(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver()
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record("customer.created", email="jenny@example.com")

    await bench.worker.drain()

    assert len(receiver.received) == 1
    event = verify(receiver.received[0], endpoint.secret)
    assert event.id == event_id
    assert event.type == "customer.created"
    assert event.data.object.email == "jenny@example.com"
    assert event.request is not None
    assert event.request.id == "req_abc"
    assert event.request.idempotency_key == "key-1"
    assert event.pending_webhooks == 1
    assert receiver.received[0].headers["Content-Type"].startswith("application/json")
    assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"
    stored = await bench.service.get_event(bench.account_id, event_id)
    assert stored.pending_webhooks == 0


async def test_a_tampered_body_a_wrong_secret_and_an_old_timestamp_fail_verification(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver()
    endpoint = await bench.endpoint(receiver.url)
    await bench.record()
    await bench.worker.drain()
    delivered = receiver.received[0]
    verify(delivered, endpoint.secret)

    tampered = json.loads(delivered.body)
    tampered["data"]["object"]["balance"] = 1_000_000
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            json.dumps(tampered), delivered.headers["Stripe-Signature"], endpoint.secret
        )
    with pytest.raises(stripe.SignatureVerificationError):
        verify(delivered, "whsec_not_the_right_secret")

    # The same delivery, signed by an endpoint whose clock is 10 minutes behind.
    late = await make_bench_endpoint_delivery_at(bench, start_receiver, minutes_ago=10)
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        verify(late[0], late[1])
    verify(late[0], late[1], tolerance=0)


async def make_bench_endpoint_delivery_at(
    bench: Bench, start_receiver: StartReceiver, *, minutes_ago: int
) -> tuple[Received, str]:
    receiver = await start_receiver()
    async with make_bench(
        bench.engine, start=bench.clock.now() - timedelta(minutes=minutes_ago)
    ) as old:
        endpoint = await old.endpoint(receiver.url)
        await old.record()
        await old.worker.drain()
    return receiver.received[0], endpoint.secret


async def test_a_receiver_failing_four_times_gets_five_attempts_on_schedule(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """5 min, 30 min, 2 h and 5 h between them, each stretched by at most its jitter; none
    early."""
    receiver = await start_receiver([Reply(500), Reply(502), Reply(503), Reply(400), Reply(200)])
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    t0 = bench.clock.now()

    await bench.worker.drain()
    for step in range(1, 5):
        assert len(receiver.received) == step
        bench.clock.advance(retry_gap(step).total_seconds() - 1)
        await bench.worker.drain()
        assert len(receiver.received) == step, "an attempt came early"
        due = (await bench.attempts(event_id))[-1].next_retry_at
        assert due is not None
        bench.clock.advance((due - bench.clock.now()).total_seconds())
        await bench.worker.drain()
    assert len(receiver.received) == 5

    attempts = await bench.attempts(event_id)
    assert attempts[0].attempted_at == t0
    assert_gaps_follow_the_schedule(gaps_between(attempts))
    assert [signed_at(r) for r in receiver.received] == [
        int(a.attempted_at.timestamp()) for a in attempts
    ]
    for received in receiver.received:
        verify(received, endpoint.secret, tolerance=0)  # signed afresh each time
    assert len({r.headers["Stripe-Signature"] for r in receiver.received}) == 5
    assert [(a.attempt_number, a.http_status, a.succeeded) for a in attempts] == [
        (1, 500, False), (2, 502, False), (3, 503, False), (4, 400, False), (5, 200, True),
    ]  # fmt: skip
    assert attempts[0].next_retry_at == attempts[1].attempted_at
    assert attempts[-1].next_retry_at is None
    assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"


async def test_a_receiver_that_always_fails_ends_failed_after_three_days(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver(lambda _: Reply(500, body="x" * 5000))
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    t0 = bench.clock.now()

    await bench.follow_schedule(event_id, endpoint.id)

    # On time: 0, 5 min, 35 min, 2 h 35, 7 h 35, 17 h 35, then every 12 h to 65 h 35; each
    # gap stretched by at most its jitter, and no attempt more than three days after the first.
    attempts = await bench.attempts(event_id)
    assert attempts[0].attempted_at == t0
    assert_gaps_follow_the_schedule(gaps_between(attempts))
    assert len(attempts) == 10
    last = attempts[-1]
    assert last.attempted_at <= t0 + RETRY_WINDOW
    assert last.attempted_at + retry_gap(len(attempts)) * (1 + RETRY_GAP_JITTER) > t0 + RETRY_WINDOW
    assert await bench.delivery_status(event_id, endpoint.id) == "failed"
    assert last.next_retry_at is None
    assert all(len(a.response_snippet) <= 512 for a in attempts)
    assert attempts[0].response_snippet.startswith("xxx")


def disable_notices(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "; disabled" in r.getMessage()]


async def test_an_endpoint_failing_every_delivery_for_three_days_is_disabled(
    bench: Bench, start_receiver: StartReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    receiver = await start_receiver(lambda _: Reply(503))
    endpoint = await bench.endpoint(receiver.url)
    await bench.record()
    for _ in range(71):
        await bench.worker.drain()
        bench.clock.advance(3600)
    assert (await bench.service.get_endpoint(bench.account_id, endpoint.id)).status is (
        EndpointStatus.ENABLED
    )
    await bench.record()  # fails too, after the endpoint has failed for 71 hours
    for _ in range(6):
        await bench.worker.drain()
        bench.clock.advance(3600)
    disabled = await bench.service.get_endpoint(bench.account_id, endpoint.id)
    assert disabled.status is EndpointStatus.DISABLED
    assert disabled.disabled_reason is not None
    assert disabled.disabled_reason.value == "failing"
    assert disable_notices(caplog) == [
        f"webhook endpoint {endpoint.id} failed every delivery for 3 days; disabled "
        "(disabled_reason failing)"
    ]


async def test_a_failure_after_days_of_silence_starts_a_new_run_instead_of_disabling(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """An endpoint whose one delivery ran out of retries, then quiet for days (it may have been
    mended meanwhile): its next failure starts a run of its own. Measured from the first
    failure of days ago, that one failure would disable it at once."""
    receiver = await start_receiver(lambda _: Reply(503))
    endpoint = await bench.endpoint(receiver.url)
    first = await bench.record()
    for _ in range(72):
        await bench.worker.drain()
        bench.clock.advance(3600)
    assert await bench.delivery_status(first, endpoint.id) == "failed"
    bench.clock.advance(5 * 24 * 3600)
    second = await bench.record()
    await bench.worker.drain()
    # Every attempt of the first, then one of the second.
    ids = [json.loads(r.body)["id"] for r in receiver.received]
    assert ids == [first] * len(await bench.attempts(first)) + [second]
    after = await bench.service.get_endpoint(bench.account_id, endpoint.id)
    assert after.status is EndpointStatus.ENABLED
    assert after.failing_since == bench.clock.now()


async def test_a_success_resets_the_failing_clock(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver(lambda n: Reply(200 if n == 3 else 500))
    endpoint = await bench.endpoint(receiver.url)
    await bench.record()
    for _ in range(4 * 24):
        await bench.worker.drain()
        bench.clock.advance(3600)
    assert (await bench.service.get_endpoint(bench.account_id, endpoint.id)).status is (
        EndpointStatus.ENABLED
    )


async def test_410_gone_disables_the_endpoint_and_stops_deliveries(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver([Reply(410)])
    endpoint = await bench.endpoint(receiver.url)
    first = await bench.record()
    await bench.worker.drain()
    gone = await bench.service.get_endpoint(bench.account_id, endpoint.id)
    assert gone.status is EndpointStatus.DISABLED
    assert gone.disabled_reason is not None
    assert gone.disabled_reason.value == "gone"
    assert await bench.delivery_status(first, endpoint.id) == "failed"

    await bench.record()
    bench.clock.advance(3600)
    await bench.worker.drain()
    assert len(receiver.received) == 1


async def test_a_disable_is_logged_only_once_it_has_committed(
    bench: Bench,
    start_receiver: StartReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A run whose transaction rolls back (here: its job was claimed again meanwhile) disabled
    nothing, and must not say it did; the run that commits says it once."""
    receiver = await start_receiver(lambda _: Reply(410))
    endpoint = await bench.endpoint(receiver.url)
    await bench.record()
    completes = complete_job

    async def claim_lost_once(db: AsyncConnection, job: Job, *, now: datetime) -> None:
        monkeypatch.setattr(runner, "complete_job", completes)
        raise ClaimLostError("claimed again")

    monkeypatch.setattr(runner, "complete_job", claim_lost_once)
    caplog.set_level(logging.WARNING)
    await bench.worker.drain()
    assert len(receiver.received) == 1
    still = await bench.service.get_endpoint(bench.account_id, endpoint.id)
    assert still.status is EndpointStatus.ENABLED
    assert disable_notices(caplog) == []

    await run_out_job_leases(bench.engine)
    await bench.worker.drain()
    gone = await bench.service.get_endpoint(bench.account_id, endpoint.id)
    assert gone.status is EndpointStatus.DISABLED
    assert disable_notices(caplog) == [
        f"webhook endpoint {endpoint.id} answered 410 Gone; disabled (disabled_reason gone)"
    ]


async def test_429_with_retry_after_delays_the_endpoint_as_asked(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """The delivery answered 429 tries again as asked; another one, which found the endpoint
    paused, waits out the pause and up to a tenth of it more (its jitter)."""
    receiver = await start_receiver([Reply(429, headers={"Retry-After": "90"})])
    await bench.endpoint(receiver.url)
    first = await bench.record()
    await bench.worker.drain()
    second = await bench.record()  # the endpoint asked for 90 s of quiet: this one waits too
    await bench.worker.drain()
    assert len(receiver.received) == 1

    bench.clock.advance(89)
    await bench.worker.drain()
    assert len(receiver.received) == 1
    bench.clock.advance(1)
    await bench.worker.drain()
    assert [json.loads(r.body)["id"] for r in receiver.received[1:]] == [first]
    attempts = await bench.attempts(first)
    assert attempts[0].http_status == 429
    assert attempts[0].next_retry_at == bench.clock.now()
    bench.clock.advance(9)
    await bench.worker.drain()
    # Well before the 5 minutes a plain failure would wait.
    assert [json.loads(r.body)["id"] for r in receiver.received[2:]] == [second]
    [waited] = await bench.attempts(second)
    assert attempts[0].next_retry_at <= waited.attempted_at


@pytest.mark.parametrize("retry_after", ["99999999999999999999", "\u00b2"])
async def test_a_429_with_an_unusable_retry_after_is_recorded_as_a_plain_failure(
    bench: Bench, start_receiver: StartReceiver, retry_after: str
) -> None:
    """The receiver's header cannot make recording the attempt fail."""
    receiver = await start_receiver([Reply(429, headers={"Retry-After": retry_after})])
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    await bench.worker.drain()
    [attempt] = await bench.attempts(event_id)
    assert attempt.http_status == 429
    assert attempt.next_retry_at is not None
    assert within_its_jitter(attempt.next_retry_at - attempt.attempted_at, timedelta(minutes=5))
    assert await bench.delivery_status(event_id, endpoint.id) == "pending"


async def test_honoured_429s_take_no_step_of_the_retry_schedule(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """A receiver that asks for a pause has not failed. Nine `429 Retry-After: 1` in the first
    ten seconds, then a 500: the 500 is the first failure, and waits the first gap (5 min). Were
    each 429 a step, the 500 would be the tenth, whose next gap falls beyond the three days, and
    the delivery would be given up ten seconds after its first attempt."""
    receiver = await start_receiver(
        lambda n: Reply(429, headers={"Retry-After": "1"}) if n < 9 else Reply(500)
    )
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    for _ in range(10):
        await bench.worker.drain()
        bench.clock.advance(1)

    attempts = await bench.attempts(event_id)
    assert [a.http_status for a in attempts] == [429] * 9 + [500]
    failure = attempts[-1]
    assert failure.attempt_number == 10
    assert failure.next_retry_at is not None
    assert within_its_jitter(failure.next_retry_at - failure.attempted_at, timedelta(minutes=5))
    assert await bench.delivery_status(event_id, endpoint.id) == "pending"


async def test_past_ten_honoured_429s_the_delivery_steps_on_but_the_endpoint_pauses_as_asked(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """An endpoint answering `429 Retry-After: 1` to everything gets ten quick tries of a
    delivery, not a call a second for three days; the eleventh 429 waits the schedule's first
    gap. The endpoint itself pauses only the second it asked for, so other events still go."""
    receiver = await start_receiver(
        lambda n: Reply(429, headers={"Retry-After": "1"}) if n < 11 else Reply(200)
    )
    endpoint = await bench.endpoint(receiver.url)
    first = await bench.record()
    for _ in range(11):
        await bench.worker.drain()
        bench.clock.advance(1)
    attempts = await bench.attempts(first)
    assert len(attempts) == 11
    stepped_on = attempts[-1]
    assert stepped_on.next_retry_at is not None
    assert within_its_jitter(
        stepped_on.next_retry_at - stepped_on.attempted_at, timedelta(minutes=5)
    )
    second = await bench.record()
    await bench.worker.drain()
    assert await bench.delivery_status(second, endpoint.id) == "succeeded"
    assert await bench.delivery_status(first, endpoint.id) == "pending"


async def test_the_ten_honoured_429s_are_the_endpoints_not_each_deliverys(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """Three deliveries pending to an endpoint that answers `429 Retry-After: 1` to everything:
    together they get ten quick tries, then each one's next 429 steps its schedule on (five
    minutes), instead of thirty quick tries between them."""
    receiver = await start_receiver(lambda _: Reply(429, headers={"Retry-After": "1"}))
    await bench.endpoint(receiver.url)
    for _ in range(3):
        await bench.record()
    for _ in range(20):
        await bench.worker.drain()
        bench.clock.advance(1)
    assert len(receiver.received) == MAX_HONOURED_RATE_LIMITS + 3


async def test_a_success_gives_the_endpoint_its_honoured_429s_back(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """Ten 429s use the endpoint's allowance; a 200 ends that storm, and the next 429 is
    honoured again (its delivery retries in a second, not five minutes)."""
    receiver = await start_receiver(
        lambda n: Reply(200) if n == 10 else Reply(429, headers={"Retry-After": "1"})
    )
    endpoint = await bench.endpoint(receiver.url)
    first = await bench.record()
    for _ in range(11):
        await bench.worker.drain()
        bench.clock.advance(1)
    assert await bench.delivery_status(first, endpoint.id) == "succeeded"
    second = await bench.record()
    await bench.worker.drain()
    [attempt] = await bench.attempts(second)
    assert attempt.http_status == 429
    assert attempt.next_retry_at == attempt.attempted_at + timedelta(seconds=1)


async def test_a_receiver_that_only_asks_for_pauses_is_given_up_after_three_days(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """Honoured 429s take no step, but they do not stretch the retry window: the delivery still
    ends three days after its first attempt (Retry-After is honoured up to 12 hours)."""
    receiver = await start_receiver(lambda _: Reply(429, headers={"Retry-After": "86400"}))
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    t0 = bench.clock.now()

    await bench.follow_schedule(event_id, endpoint.id)

    hours = [round((signed_at(r) - t0.timestamp()) / 3600) for r in receiver.received]
    assert hours == [0, 12, 24, 36, 48, 60, 72]
    assert await bench.delivery_status(event_id, endpoint.id) == "failed"


async def test_retries_that_fell_due_while_no_worker_ran_are_not_made_back_to_back(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """The first attempt fails and no worker runs for a day. The retry made then is followed by
    the next gap of the schedule, measured from it, rather than by every retry whose time came
    during the outage (five POSTs of one event at one instant). The delivery still ends once the
    next attempt would fall beyond three days of the first."""
    receiver = await start_receiver(lambda _: Reply(503))
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    t0 = bench.clock.now()
    await bench.worker.drain()
    assert len(receiver.received) == 1

    bench.clock.advance(24 * 3600)
    await bench.worker.drain()  # one instant: the clock does not move

    assert len(receiver.received) == 2
    late = (await bench.attempts(event_id))[-1]
    assert late.next_retry_at is not None
    assert within_its_jitter(late.next_retry_at - bench.clock.now(), timedelta(minutes=30))
    assert await bench.delivery_status(event_id, endpoint.id) == "pending"

    await bench.follow_schedule(event_id, endpoint.id)
    # On time: 0, 24 h (late), then 24 h 30, 26 h 30, 31 h 30, 41 h 30, 53 h 30 and 65 h 30.
    attempts = await bench.attempts(event_id)
    assert attempts[0].attempted_at == t0
    assert attempts[1].attempted_at == t0 + timedelta(hours=24)
    assert_gaps_follow_the_schedule(gaps_between(attempts)[1:], first_step=2)
    assert len(attempts) == 8
    assert attempts[-1].attempted_at <= t0 + RETRY_WINDOW
    assert await bench.delivery_status(event_id, endpoint.id) == "failed"


async def test_deliveries_to_one_endpoint_never_exceed_its_concurrency_limit(
    core_engine: AsyncEngine, start_receiver: StartReceiver
) -> None:
    import asyncio

    from remit.core.clock import SystemClock

    receiver = await start_receiver(lambda _: Reply(delay_s=0.2))
    settings = DeliverySettings(max_concurrent_per_endpoint=3,
                                busy_retry=timedelta(milliseconds=50))  # fmt: skip
    async with make_bench(core_engine, settings=settings) as bench:
        await bench.endpoint(receiver.url)
        for _ in range(12):
            await bench.record()
        # Two workers, each willing to run 4 deliveries at once, on the real clock. They share
        # this test's engine, whose pool must hold more connections than the jobs the two run
        # at once: a delivery holds its job's transaction while it takes a second connection.
        workers = [bench.worker, type(bench.worker)(engine=core_engine,
                   handlers=bench.worker.handlers, clock=SystemClock(), concurrency=4)]  # fmt: skip
        bench.worker.clock = SystemClock()
        bench.worker.concurrency = 4

        async def run(worker: object) -> None:
            # Only deliveries that never all come wait this long: on the real clock, an
            # attempt a loaded machine failed (its pool's wait, say) is retried after seconds.
            deadline = asyncio.get_running_loop().time() + 60
            while len(receiver.received) < 12 and asyncio.get_running_loop().time() < deadline:
                await worker.run_once()  # type: ignore[attr-defined]
                await asyncio.sleep(0.01)

        await asyncio.gather(*(run(w) for w in workers))
    assert len(receiver.received) == 12
    assert receiver.max_in_flight == 3


async def test_a_rolled_secret_signs_with_both_secrets_for_24_hours(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver()
    endpoint = await bench.endpoint(receiver.url)
    rolled, old_expires_at = await bench.service.roll_secret(bench.account_id, endpoint.id)
    assert rolled.secret != endpoint.secret
    assert old_expires_at == bench.clock.now() + timedelta(hours=24)

    await bench.record()
    await bench.worker.drain()
    header = receiver.received[0].headers["Stripe-Signature"]
    assert header.count("v1=") == 2
    verify(receiver.received[0], rolled.secret)
    verify(receiver.received[0], endpoint.secret)

    bench.clock.advance(24 * 3600)
    await bench.record()
    await bench.worker.drain()
    assert receiver.received[1].headers["Stripe-Signature"].count("v1=") == 1
    verify(receiver.received[1], rolled.secret, tolerance=0)
    with pytest.raises(stripe.SignatureVerificationError):
        verify(receiver.received[1], endpoint.secret, tolerance=0)


async def test_a_secret_rolled_twice_keeps_each_old_one_until_its_own_expiry(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """Rolled at 0 h (old one valid 24 h) and again at 2 h (old one valid 48 h): from 2 h to
    24 h events carry three signatures; from 24 h to 50 h two; then one."""
    receiver = await start_receiver()
    original = await bench.endpoint(receiver.url)
    first, _ = await bench.service.roll_secret(bench.account_id, original.id)
    bench.clock.advance(2 * 3600)
    second, _ = await bench.service.roll_secret(
        bench.account_id, original.id, expire_old_after=timedelta(hours=48)
    )

    async def deliver_now() -> Received:
        await bench.record()
        await bench.worker.drain()
        return receiver.received[-1]

    three = await deliver_now()
    assert three.headers["Stripe-Signature"].count("v1=") == 3
    for secret in (second.secret, first.secret, original.secret):
        verify(three, secret)

    bench.clock.advance(22 * 3600)  # 24 h: the original secret's day is over
    two = await deliver_now()
    assert two.headers["Stripe-Signature"].count("v1=") == 2
    verify(two, second.secret, tolerance=0)
    verify(two, first.secret, tolerance=0)
    with pytest.raises(stripe.SignatureVerificationError):
        verify(two, original.secret, tolerance=0)

    bench.clock.advance(26 * 3600)  # 50 h: the second roll's 48 h are over
    one = await deliver_now()
    assert one.headers["Stripe-Signature"].count("v1=") == 1
    verify(one, second.secret, tolerance=0)


async def test_an_old_secret_expiring_at_once_is_not_kept(bench: Bench) -> None:
    endpoint = await bench.endpoint("http://127.0.0.1:9/hook")
    await bench.service.roll_secret(bench.account_id, endpoint.id)
    bench.clock.advance(25 * 3600)
    rolled, _ = await bench.service.roll_secret(
        bench.account_id, endpoint.id, expire_old_after=timedelta(0)
    )
    assert rolled.signing_secrets(bench.clock.now()) == [rolled.secret]
    # The expired one is pruned too, not only left unused.
    assert rolled.rolled_secrets == ()


async def test_only_endpoints_subscribed_to_the_type_receive_it(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    customers = await start_receiver()
    payments = await start_receiver()
    await bench.endpoint(customers.url, ["customer.created", "customer.updated"])
    await bench.endpoint(payments.url, ["payment_intent.succeeded"])
    await bench.record("customer.updated")
    await bench.worker.drain()
    assert len(customers.received) == 1
    assert payments.received == []


async def test_a_connection_refused_is_recorded_as_an_error_and_retried(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver()
    url = receiver.url
    await receiver.stop()
    endpoint = await bench.endpoint(url)
    event_id = await bench.record()
    await bench.worker.drain()
    [attempt] = await bench.attempts(event_id)
    assert attempt.http_status is None
    assert attempt.error is not None
    assert "connection failed" in attempt.error
    assert attempt.next_retry_at is not None
    assert within_its_jitter(attempt.next_retry_at - bench.clock.now(), timedelta(minutes=5))
    assert await bench.delivery_status(event_id, endpoint.id) == "pending"


async def test_a_roll_retried_under_its_key_rolls_once(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """A second roll would make the secret the lost first answer carried the old one."""
    receiver = await start_receiver()
    endpoint = await bench.endpoint(receiver.url)
    call = KeyedCall(
        account_id=bench.account_id, key="roll", endpoint="Roll", request_body=endpoint.id.encode()
    )
    keyed: Keyed[tuple[WebhookEndpoint, datetime]] = Keyed(
        call, lambda rolled: rolled[0].secret.encode()
    )
    first = await bench.service.roll_secret_once(bench.account_id, keyed, endpoint.id)
    again = await bench.service.roll_secret_once(bench.account_id, keyed, endpoint.id)
    assert isinstance(first, Done)
    assert isinstance(again, Replay)
    assert again.body == first.value[0].secret.encode()
    current = await bench.service.get_endpoint(bench.account_id, endpoint.id)
    assert current.secret == first.value[0].secret
    assert [old.secret for old in current.rolled_secrets] == [endpoint.secret]


async def test_a_card_number_an_endpoint_answers_is_stored_masked(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver(
        lambda _: Reply(500, body="rejected card 4242 4242 4242 4242 with sk_test_abcdef123456")
    )
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()

    await bench.worker.drain()

    async with bench.engine.connect() as db:
        snippets = (await db.execute(text(
            "SELECT response_snippet FROM webhook_delivery_attempts WHERE endpoint_id = :id"
        ), {"id": endpoint.id})).scalars().all()  # fmt: skip
        # Every stored snippet and error, as a dump or a replica of the table would hold them.
        digits = await db.scalar(text(
            "SELECT count(*) FROM webhook_delivery_attempts WHERE regexp_replace("
            "coalesce(response_snippet, '') || coalesce(error, ''), '[ -]', '', 'g') "
            "~ '4242424242424242'"
        ))  # fmt: skip
    assert digits == 0
    assert snippets == ["rejected card [card ****4242] with sk_test_********3456"]
    [attempt] = await bench.attempts(event_id)
    assert attempt.response_snippet == snippets[0]


async def test_an_error_quoting_a_card_number_is_masked() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    result = HttpResult(None, 3, "", "connection failed: host 4000056655665556.example", None)
    assert outcome_of(result, now).error == "connection failed: host [card ****5556].example"
