"""Core migration 0079 records when an idempotency key's request finished: a key finished before
it gets the latest time known of its request (its last run, never before its creation), an
unfinished one none; a key finished late then answers its client's retries for a day from that
time, not from its creation; the downgrade takes the column away and leaves the keys."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from alembic import command

from remit.payments import idempotency
from remit.storage import batched_backfill
from remit.storage.embedded import EmbeddedCluster
from remit.storage.engine import dispose, make_engine
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

pytestmark = pytest.mark.anyio

_BEFORE = "0078_delivery_jobs_by_delivery"
_AFTER = "0079_idempotency_finished_at"
_CREATED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
# The completer's last try of `late`, which finished it, began 30 hours after its request.
_LAST_RUN = _CREATED + timedelta(hours=30)


@pytest.fixture
def database_before(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "idempotency_finished_at") as url:
        upgrade("core", url, _BEFORE)
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(
                "INSERT INTO accounts (id, created_at, default_currency, raw_card_access, "
                "fee_percent_bps, fee_fixed_minor, available_delay_days, automatic_payouts, "
                "radar_enabled) VALUES ('acct_1', now(), 'usd', false, 290, 30, 2, false, true)"
            )
            for key, point, last_run in (
                ("late", "finished", _LAST_RUN),
                ("on-time", "finished", _CREATED),
                ("held", "attempt_created", _LAST_RUN),
            ):
                db.execute(
                    "INSERT INTO idempotency_keys (account_id, key, endpoint, request_digest, "
                    "request_body, recovery_point, response_code, response_body, created_at, "
                    "last_run_at, owner) VALUES ('acct_1', %s, 'CreatePaymentIntent', %s, "
                    "'\\x00', %s, 0, '\\x01', %s, %s, 'o')",
                    (
                        key,
                        idempotency.digest("CreatePaymentIntent", b"\x00"),
                        point,
                        _CREATED,
                        last_run,
                    ),
                )
        yield url


def _finished_at(url: str) -> dict[str, datetime | None]:
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT key, finished_at FROM idempotency_keys").fetchall()
    return {str(key): finished_at for key, finished_at in rows}


def _columns(url: str) -> set[str]:
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'idempotency_keys'"
        ).fetchall()
    return {str(row[0]) for row in rows}


async def test_finished_keys_get_their_last_run_and_a_late_one_still_replays(
    database_before: str,
) -> None:
    url = database_before
    upgrade("core", url, _AFTER)

    assert _finished_at(url) == {"late": _LAST_RUN, "on-time": _CREATED, "held": None}
    # The code below is this version's, which reads the columns of every later migration too.
    upgrade("core", url, "head")
    engine = make_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), pool_size=1)
    try:
        async with engine.begin() as db:
            # 26 hours after its creation, 2 hours after its finish: still its answer.
            record = await idempotency.begin(
                db,
                account_id="acct_1",
                key="late",
                endpoint="CreatePaymentIntent",
                request_body=b"\x00",
                request_id=None,
                now=_LAST_RUN + timedelta(hours=2),
            )
        assert record.finished
        assert record.response_body == b"\x01"
    finally:
        await dispose(engine)

    command.downgrade(alembic_config("core", url), _BEFORE)
    assert "finished_at" not in _columns(url)
    with psycopg.connect(url) as db:
        keys = db.execute("SELECT key, recovery_point FROM idempotency_keys ORDER BY key")
        assert keys.fetchall() == [
            ("held", "attempt_created"),
            ("late", "finished"),
            ("on-time", "finished"),
        ]


def test_the_backfill_runs_in_batches_along_the_primary_key(
    database_before: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of one key: every key is reached, whichever batch it falls in.
    monkeypatch.setattr(batched_backfill, "BATCH_ROWS", 1)
    upgrade("core", database_before, _AFTER)

    assert _finished_at(database_before) == {"late": _LAST_RUN, "on-time": _CREATED, "held": None}
