from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from remit.storage.schema import core_metadata

webhook_endpoints = Table(
    "webhook_endpoints",
    core_metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("url", Text, nullable=False),
    Column("enabled_events", JSONB, nullable=False),
    Column("api_version", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("metadata", JSONB, nullable=False),
    Column("status", Text, nullable=False),
    Column("disabled_reason", Text, nullable=True),
    # Signing needs the key itself, so unlike API keys it cannot be stored as a digest.
    Column("secret", Text, nullable=False),
    # Secrets replaced by a roll and still valid: [{"secret", "expires_at" (ISO 8601)}], newest
    # first (`remit.webhooks.domain.RolledSecret`).
    Column("rolled_secrets", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    # The single slot `rolled_secrets` replaced (core migration 0024). Unused, and kept so that
    # processes of the earlier version still running during an upgrade can read their rows; a
    # later migration drops them once no such process can remain.
    Column("previous_secret", Text, nullable=True),
    Column("previous_secret_expires_at", DateTime(timezone=True), nullable=True),
    # Start of the current run of failed attempts; cleared by any success, and by enabling the
    # endpoint again (`EndpointRepository.start_afresh`).
    Column("failing_since", DateTime(timezone=True), nullable=True),
    # The latest failed attempt: a long silence since it breaks the run (FAILURE_RUN_BREAK).
    Column("last_failed_at", DateTime(timezone=True), nullable=True),
    # A successful attempt (by when it was made), less than SUCCESS_NOTED_WITHIN older than the
    # latest one: a failure made before the latest success, recorded after it, starts no run.
    Column("last_succeeded_at", DateTime(timezone=True), nullable=True),
    # Set from a 429's Retry-After: no attempt to this endpoint before then.
    Column("rate_limited_until", DateTime(timezone=True), nullable=True),
    # 429s honoured (waited out without a step of the retry schedule) since the endpoint last
    # answered 2xx or was enabled again: its deliveries share MAX_HONOURED_RATE_LIMITS of them.
    Column("rate_limits_honoured", Integer, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    Index("ix_webhook_endpoints_account_id_created_at", "account_id", "created_at", "id"),
)

events = Table(
    "events",
    core_metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("type", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("livemode", Boolean, nullable=False),
    # The resource at the latest schema; rendered at a version only when delivered or read.
    Column("data_object", JSONB, nullable=False),
    Column("previous_attributes", JSONB, nullable=True),
    Column("request_id", Text, nullable=True),
    Column("idempotency_key", Text, nullable=True),
    # The account's API version when the event was recorded: the version its data is rendered
    # at unless an endpoint asks for its own (NULL for events older than the column, and for an
    # account not yet pinned: the account's current version then).
    Column("api_version", Text, nullable=True),
    # The order events were recorded in, drawn from a sequence by the insert itself: among the
    # events of one instant (those of one transaction share it), it orders them, newest first
    # in lists and oldest first in streams, as they were recorded (core migration 0087).
    Column("seq", BigInteger, nullable=False, server_default=text("nextval('events_seq')")),
    Index("ix_events_account_id_created_at_seq", "account_id", "created_at", "seq"),
    Index("ix_events_created_at", "created_at"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    core_metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("account_id", Text, nullable=False),
    Column("event_id", Text, ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column(
        "endpoint_id",
        Text,
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    # Failed attempts that stepped the retry schedule on; a 429 whose Retry-After was honoured
    # is an attempt but no step, so a burst of them cannot use up the schedule.
    Column("retry_step", Integer, nullable=False, server_default=text("0")),
    # The retry window (three days) is measured from here.
    Column("first_attempt_at", DateTime(timezone=True), nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("last_attempt_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    # How many times the delivery was started over (a redelivery of it failed): its jobs say
    # which generation they were made for, and act only for that one.
    Column("generation", Integer, nullable=False, server_default=text("0")),
    # How many times a job of this generation failed for good and its give-up step (which
    # fails the delivery) failed too, leaving it pending with no job; and why the latest did.
    # The repair stages no job for one that has reached GIVE_UP_TRIES (`remit.webhooks.repair`,
    # core migration 0073).
    Column("give_up_failures", Integer, nullable=False, server_default=text("0")),
    Column("give_up_error", Text, nullable=True),
    UniqueConstraint("event_id", "endpoint_id"),
    Index("ix_webhook_deliveries_endpoint_id_status", "endpoint_id", "status"),
    # The repair of deliveries left pending with no job reads the overdue ones by due time
    # (`remit.webhooks.repair`, core migration 0068).
    Index(
        "ix_webhook_deliveries_pending_due",
        "next_attempt_at",
        "id",
        postgresql_where=text("status = 'pending'"),
    ),
    # A deleted endpoint's pending deliveries are ended in id order, a batch at a time
    # (`remit.webhooks.deleted`, core migration 0075).
    Index(
        "ix_webhook_deliveries_pending_endpoint",
        "endpoint_id",
        "id",
        postgresql_where=text("status = 'pending'"),
    ),
)

webhook_delivery_attempts = Table(
    "webhook_delivery_attempts",
    core_metadata,
    Column("id", Text, primary_key=True),
    Column(
        "delivery_id",
        BigInteger,
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("account_id", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("endpoint_id", Text, nullable=False),
    Column("attempted_at", DateTime(timezone=True), nullable=False),
    Column("http_status", Integer, nullable=True),
    Column("latency_ms", BigInteger, nullable=False),
    Column("response_snippet", Text, nullable=False),
    Column("error", Text, nullable=True),
    Column("next_retry_at", DateTime(timezone=True), nullable=True),
    Column("attempt_number", Integer, nullable=False),
    Column("succeeded", Boolean, nullable=False),
    Index("ix_webhook_delivery_attempts_event_id", "event_id", "attempted_at"),
    Index("ix_webhook_delivery_attempts_endpoint_id", "endpoint_id", "attempted_at"),
    # One number per attempt of a delivery, whoever made it (core migration 0076,
    # `DeliveryRepository.insert_attempt`); it serves the look-ups by delivery too.
    Index("ux_webhook_delivery_attempts_number", "delivery_id", "attempt_number", unique=True),
)

# One row per delivery in flight, under a lease: how many worker processes may POST to one
# endpoint at once is counted here, so the limit holds across processes and a crashed worker's
# slot frees itself when the lease runs out.
webhook_inflight = Table(
    "webhook_inflight",
    core_metadata,
    Column("delivery_id", BigInteger, primary_key=True),
    Column("endpoint_id", Text, nullable=False),
    Column("leased_until", DateTime(timezone=True), nullable=False),
    # The job whose run took the slot, or that was woken with it: its runs take it again
    # (`InflightRepository`, `remit.webhooks.parking`).
    Column("job_id", BigInteger, nullable=True),
    Index("ix_webhook_inflight_endpoint_id", "endpoint_id"),
)

# A delivery waiting for one of its endpoint's slots, with no job: the attempt that lets a slot
# of the endpoint go hands it to the oldest one (by when its attempt fell due), staging its job
# and leasing the slot to that job (`remit.webhooks.parking`).
webhook_parked = Table(
    "webhook_parked",
    core_metadata,
    Column(
        "delivery_id",
        BigInteger,
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("endpoint_id", Text, nullable=False),
    Column("account_id", Text, nullable=False),
    # The attempt its job was to make, and what is left of that job's attempt limit: the job
    # staged when it is woken makes that attempt under that limit.
    Column("attempt", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    # The delivery's generation the parking job was made for (NULL: parked by a process of
    # an earlier version, whose jobs say none).
    Column("generation", Integer, nullable=True),
    # When the attempt fell due: the longest waiting is woken first.
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("parked_at", DateTime(timezone=True), nullable=False),
    Index("ix_webhook_parked_endpoint_id_due_at", "endpoint_id", "due_at", "delivery_id"),
)
