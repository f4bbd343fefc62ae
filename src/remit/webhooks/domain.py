"""Events, endpoints, deliveries and attempts, and the pure rules of the retry schedule."""

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Final

from remit.core.jsonview import JsonObject

# The wait after each failed attempt: the first attempt is made at once, then each retry comes
# 5 min, 30 min, 2 h, 5 h, 10 h, then every 12 h after the attempt before it, for as long as the
# next attempt still falls within three days of the first. On time, that is 0, 5 min, 35 min,
# 2 h 35, 7 h 35, 17 h 35, 29 h 35, 41 h 35, 53 h 35 and 65 h 35 after the first, then failed.
# Each gap is measured from the attempt before, so a late attempt (the workers were down) is
# followed by a full gap rather than by every retry that fell due meanwhile. Each gap is also
# stretched by a random part of up to RETRY_GAP_JITTER of itself (see there). A 429 whose
# Retry-After is honoured waits as asked instead and takes no step along these gaps: a receiver
# that asks for a pause has not failed, and a burst of them must not use up the schedule.
RETRY_GAPS: Final[tuple[timedelta, ...]] = (
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
)
STEADY_RETRY_GAP: Final = timedelta(hours=12)
RETRY_WINDOW: Final = timedelta(days=3)
# Deliveries that failed together (an endpoint's outage fails every one of them within
# seconds) would otherwise retry together at every step for three days, each time a burst on
# the endpoint's slots and on the receiver as it comes back. A gap stretched by up to a tenth
# spreads each wave over 30 s at the first step and over an hour at the steady one. Stretched,
# never shortened: no retry comes before the gap above says, and the retry window is kept as
# it is (no attempt beyond three days of the first), so the on-time schedule's last attempt,
# 65 h 35 after the first, lands between there and 72 h: ten attempts, as without it (nine
# only if nearly every gap drew its longest stretch).
RETRY_GAP_JITTER: Final = 0.1
# An endpoint's pause (a 429's Retry-After) ends at one instant for every delivery that waited
# it out. Each waits a random part of a tenth of the pause still to run on top, at least up to
# a second and at most up to a minute: a thousand waiting deliveries arrive over a second or
# more, not at once, and none waits long past the pause the receiver asked for. The delivery
# that was answered 429 itself tries again as the receiver asked, at the pause's end.
RATE_LIMIT_SPREAD: Final = 0.1
RATE_LIMIT_SPREAD_AT_LEAST: Final = timedelta(seconds=1)
RATE_LIMIT_SPREAD_AT_MOST: Final = timedelta(minutes=1)
# An endpoint whose every delivery has failed for this long is disabled.
FAILING_ENDPOINT_DISABLE_AFTER: Final = timedelta(days=3)
# A run of failures is broken by a success, or by a silence longer than this: while any
# delivery is pending, failures come at most one steady retry gap apart (12 hours, 13 h 12 at
# its longest stretch), so a longer silence means nothing was tried, and a failure after it
# starts a run of its own rather than disabling, at once, an endpoint that may have been
# mended meanwhile.
FAILURE_RUN_BREAK: Final = timedelta(hours=24)
# A success leaves its endpoint's row alone when the row already holds a success made less than
# this before it (and no run of failures or 429 allowance to reset), so a busy endpoint's row is
# written about once a second, not once per delivery. Its latest success on record may lag the
# latest one made by this much, so a failure made less than this after the success on record
# counts as made before the latest success (`EndpointRepository.note_success` says why that
# keeps the rule exact; it postpones the start of a run by at most this much and the gap to the
# next failure, next to the three days it takes to disable an endpoint).
SUCCESS_NOTED_WITHIN: Final = timedelta(seconds=1)
# The longest one attempt's POST may take, its response's snippet read (`WebhookSender`). A
# stopping worker lets a delivery in flight run this long and its recording
# (`remit.worker.leases.stop_drain_for`).
DELIVERY_TIMEOUT_S: Final = 30.0
# Retry-After is honoured up to this long; a longer value is treated as this.
MAX_RETRY_AFTER: Final = timedelta(hours=12)
# Delay-seconds longer than this many digits (over 300 years) are no usable Retry-After.
MAX_RETRY_AFTER_DIGITS: Final = 10
# A receiver may ask for pauses, but not for ever: past this many honoured 429s, a delivery's
# further 429s are ordinary failures and step the schedule on, so an endpoint that answers
# "429 Retry-After: 1" to everything is not called every second for three days. An endpoint
# has as many, shared by all its deliveries, until it next answers 2xx: many pending events
# do not each bring ten quick calls of their own.
MAX_HONOURED_RATE_LIMITS: Final = 10
# A delivery job that fails for good fails its delivery (its give-up step). When that step fails
# too, the delivery is left pending with no job, and the worker's repair stages one again: up to
# this many times. Each round takes the job's whole attempt limit (hours of backoff), so a
# give-up that failed by chance (a lock wait that timed out, a deadlock) gets more tries, and
# one that fails every time stops costing a job's attempts every few hours.
GIVE_UP_TRIES: Final = 3
OLD_SECRET_DEFAULT_LIFETIME: Final = timedelta(hours=24)
# Each old secret still signing adds a `v1=` of 67 bytes to every delivery's Stripe-Signature
# header: rolls that would keep more than this many signing are refused (a roll that retires
# the current secret at once adds none), so the header stays far below the 8 KB many servers
# allow for one.
MAX_SIGNING_ROLLED_SECRETS: Final = 5
# Endpoints an account may have (deleted ones aside), as at Stripe: every event adds a delivery
# and a job per endpoint subscribed to it, in the transaction that records it (a payment's
# own), and each is a POST to someone's server.
MAX_ENDPOINTS_PER_ACCOUNT: Final = 16
EVENT_RETENTION: Final = timedelta(days=30)


class EndpointStatus(Enum):
    ENABLED = "enabled"
    DISABLED = "disabled"


class DisabledReason(Enum):
    BY_USER = "by_user"
    GONE = "gone"  # the endpoint answered 410 Gone
    FAILING = "failing"  # every delivery failed for three days
    # Its URL is one remit refuses to save, and never delivers to: a host that is an IPv4
    # address not written in dotted-decimal form, saved before such URLs were refused (core
    # migration 0051).
    URL_INVALID = "url_invalid"


_DISABLED_BECAUSE: Final = {
    DisabledReason.FAILING.value: "failed every delivery for 3 days",
    DisabledReason.GONE.value: "answered 410 Gone",
}


def disabled_message(endpoint_id: str, reason: str) -> str:
    """What is said, to the log and to an operator, when an attempt disables an endpoint
    (`reason`: its `disabled_reason`)."""
    because = _DISABLED_BECAUSE.get(reason, reason)
    return f"webhook endpoint {endpoint_id} {because}; disabled (disabled_reason {reason})"


class DeliveryStatus(Enum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class Event:
    id: str
    account_id: str
    type: str
    created_at: datetime
    livemode: bool
    data_object: JsonObject
    previous_attributes: JsonObject | None
    request_id: str | None
    idempotency_key: str | None
    pending_webhooks: int = 0
    # The account's API version when the event was recorded (None: not known; the account's
    # current version stands in).
    api_version: str | None = None

    def rendered_version(
        self, endpoint_version: str | None, account_version: str | None
    ) -> str | None:
        """The version to render this event at: the endpoint's own if it has one, else the
        account's version of the moment the event happened (Stripe renders an event once, for
        the account, and never again), else the account's current one."""
        return endpoint_version or self.api_version or account_version


@dataclass(frozen=True)
class RolledSecret:
    """A signing secret replaced by a roll: still signed with until it expires."""

    secret: str
    expires_at: datetime


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    account_id: str
    url: str
    enabled_events: tuple[str, ...]
    api_version: str | None
    description: str | None
    metadata: Mapping[str, str]
    status: EndpointStatus
    disabled_reason: DisabledReason | None
    secret: str
    # Every rolled secret not yet expired (as of the latest roll), newest first: each roll
    # gives the secret it replaces an expiry of its own, and a second roll within that time
    # must not cut it short.
    rolled_secrets: tuple[RolledSecret, ...]
    failing_since: datetime | None
    rate_limited_until: datetime | None
    created_at: datetime

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets an attempt made `now` is signed with: the current one, then every rolled
        one that has not expired, so receivers can switch without missing an event."""
        return [self.secret] + [old.secret for old in self.rolled_secrets if now < old.expires_at]

    def signing_rolled_secrets(self, now: datetime) -> tuple[RolledSecret, ...]:
        """The rolled secrets that still sign `now`, newest first."""
        return tuple(old for old in self.rolled_secrets if now < old.expires_at)

    def rolled(
        self, new_secret: str, *, now: datetime, old_lifetime: timedelta
    ) -> "WebhookEndpoint":
        """The endpoint signing with `new_secret`; the current secret stays valid for
        `old_lifetime`, and rolled secrets already expired are dropped."""
        kept = self.signing_rolled_secrets(now)
        if old_lifetime > timedelta(0):
            kept = (RolledSecret(self.secret, now + old_lifetime), *kept)
        return replace(self, secret=new_secret, rolled_secrets=kept)


@dataclass(frozen=True)
class Delivery:
    id: int
    account_id: str
    event_id: str
    endpoint_id: str
    status: DeliveryStatus
    attempts: int
    # Failed attempts so far that stepped the retry schedule on (honoured 429s do not): the
    # wait before the next attempt is `retry_gap` of the next step.
    retry_step: int
    first_attempt_at: datetime
    next_attempt_at: datetime | None
    # How many times it was started over (a redelivery of it failed): a job made for an
    # earlier generation acts for none of this one.
    generation: int = 0


@dataclass(frozen=True)
class DeliveryAttempt:
    id: str
    delivery_id: int
    event_id: str
    endpoint_id: str
    attempted_at: datetime
    http_status: int | None
    latency_ms: int
    response_snippet: str
    error: str | None
    next_retry_at: datetime | None
    attempt_number: int
    succeeded: bool


@dataclass(frozen=True)
class NewAttempt:
    """An attempt about to be stored, not numbered yet: it is numbered as it is stored, after
    every attempt of its delivery stored before it (`DeliveryRepository.insert_attempt`), so
    that the worker's attempts, resends and the attempts of a delivery started over never
    share a number."""

    id: str
    delivery_id: int
    event_id: str
    endpoint_id: str
    attempted_at: datetime
    http_status: int | None
    latency_ms: int
    response_snippet: str
    error: str | None
    next_retry_at: datetime | None
    succeeded: bool

    def numbered(self, attempt_number: int) -> DeliveryAttempt:
        return DeliveryAttempt(
            id=self.id,
            delivery_id=self.delivery_id,
            event_id=self.event_id,
            endpoint_id=self.endpoint_id,
            attempted_at=self.attempted_at,
            http_status=self.http_status,
            latency_ms=self.latency_ms,
            response_snippet=self.response_snippet,
            error=self.error,
            next_retry_at=self.next_retry_at,
            attempt_number=attempt_number,
            succeeded=self.succeeded,
        )


@dataclass(frozen=True)
class AttemptOutcome:
    """What came back from one POST."""

    http_status: int | None
    latency_ms: int
    response_snippet: str
    error: str | None
    retry_after: timedelta | None = None

    @property
    def succeeded(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300

    @property
    def gone(self) -> bool:
        return self.http_status == 410

    @property
    def rate_limited(self) -> bool:
        return self.http_status == 429 and self.retry_after is not None


def retry_gap(failures: int) -> timedelta:
    """The wait after the `failures`-th failed attempt (1 for the first); honoured 429s are not
    failures here."""
    if failures < 1:
        raise ValueError("failures are counted from 1")
    index = failures - 1
    return RETRY_GAPS[index] if index < len(RETRY_GAPS) else STEADY_RETRY_GAP


def within_retry_window(first_attempt_at: datetime, due: datetime) -> datetime | None:
    """`due`, or None (give up) when it falls beyond three days of the first attempt."""
    return None if due > first_attempt_at + RETRY_WINDOW else due


def _check_draw(draw: float) -> float:
    if not 0.0 <= draw < 1.0:
        raise ValueError("a random draw is in [0, 1)")
    return draw


def next_attempt_after_failure(
    first_attempt_at: datetime, failures: int, now: datetime, draw: float = 0.0
) -> datetime | None:
    """When to try again after the `failures`-th failed attempt, which ended `now`; None means
    give up. The gap is measured from this attempt, never from the first, so retries that fell
    due while no worker ran are not made back to back. `draw`, in [0, 1) (`random.random()`),
    says how much of RETRY_GAP_JITTER the gap is stretched by."""
    gap = retry_gap(failures) * (1.0 + RETRY_GAP_JITTER * _check_draw(draw))
    return within_retry_window(first_attempt_at, now + gap)


def _on_time_schedule_span() -> timedelta:
    """From a delivery's first attempt to its last, every attempt made as it fell due and no
    gap stretched: 65 h 35 (the shortest a whole schedule of failures takes)."""
    first = last = datetime(2000, 1, 1, tzinfo=UTC)
    failures = 1
    while (due := next_attempt_after_failure(first, failures, last)) is not None:
        last, failures = due, failures + 1
    return last - first


# A delivery's last attempt, failed with no other delivery of its endpoint pending, disables
# the endpoint when its run of failures has lasted this long: a lone delivery's retries span
# no more than the three-day window, so the three-day rule alone would never disable an
# endpoint whose deliveries come one at a time (see `EndpointRepository.note_failure`).
ON_TIME_SCHEDULE_SPAN: Final = _on_time_schedule_span()


def after_pause(paused_until: datetime, now: datetime, draw: float = 0.0) -> datetime:
    """When a delivery that found its endpoint paused until `paused_until` looks again: the
    pause's end, plus `draw` (in [0, 1)) of its spread (RATE_LIMIT_SPREAD)."""
    spread = min(
        max((paused_until - now) * RATE_LIMIT_SPREAD, RATE_LIMIT_SPREAD_AT_LEAST),
        RATE_LIMIT_SPREAD_AT_MOST,
    )
    return paused_until + spread * _check_draw(draw)


def next_attempt_after_rate_limit(
    first_attempt_at: datetime, retry_after: timedelta, now: datetime
) -> datetime | None:
    """When to try again after a 429 that asked to wait `retry_after`; None means give up."""
    return within_retry_window(first_attempt_at, retry_after_deadline(retry_after, now))


def retry_after_deadline(retry_after: timedelta, now: datetime) -> datetime:
    return now + min(max(retry_after, timedelta(seconds=1)), MAX_RETRY_AFTER)


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """Retry-After as delay-seconds or an HTTP date (RFC 9110 §10.2.3), at most
    MAX_RETRY_AFTER; None if unusable. Whatever an endpoint sends, this never raises: the
    header is the receiver's text, read while its attempt is recorded."""
    if value is None:
        return None
    text = value.strip()
    if not text.isascii():
        # `str.isdigit` is true of "²" or "١٢" too, which are no delay-seconds.
        return None
    if text.isdigit():
        if len(text) > MAX_RETRY_AFTER_DIGITS:
            return None
        return min(timedelta(seconds=int(text)), MAX_RETRY_AFTER)
    from email.utils import parsedate_to_datetime

    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError):  # a huge year or offset overflows
        return None
    if moment.tzinfo is None:
        return None
    return min(max(moment - now, timedelta(0)), MAX_RETRY_AFTER)
