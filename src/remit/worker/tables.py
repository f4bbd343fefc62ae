from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB

from remit.storage.schema import core_metadata

jobs = Table(
    "jobs",
    core_metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("account_id", Text, nullable=True),
    # Two stagings with the same dedupe key are one job (e.g. one expiry per intent).
    Column("dedupe_key", Text, nullable=True, unique=True),
    Column("status", Text, nullable=False, server_default=text("'pending'")),
    Column("run_at", DateTime(timezone=True), nullable=False),
    Column("locked_until", DateTime(timezone=True), nullable=True),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("max_attempts", Integer, nullable=False),
    # The claims put back, made before the job was due: counted in `attempts` and
    # `max_attempts` too (core migration 0074, `remit.worker.jobs.reschedule_job`).
    Column("put_backs", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    # The claim query scans only runnable jobs, oldest first.
    Index(
        "ix_jobs_runnable",
        "run_at",
        postgresql_where=text("status = 'pending'"),
    ),
    # Each of a worker's lanes claims its own kinds' due jobs, oldest first (core migration
    # 0077, `remit.worker.runner.Lane`).
    Index(
        "ix_jobs_runnable_kind",
        "kind",
        "run_at",
        "id",
        postgresql_where=text("status = 'pending'"),
    ),
    # The prune deletes ended jobs by their end, and `remit jobs failed` lists the failed ones,
    # the latest first (core migration 0066).
    Index(
        "ix_jobs_finished",
        "status",
        "finished_at",
        postgresql_where=text("status IN ('done', 'failed')"),
    ),
)
