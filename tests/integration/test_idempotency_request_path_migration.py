"""Core migration 0053 lets an idempotency key keep the URL path of its first request: keys
stored before it keep everything they had and no path, and a reuse of one on another endpoint
names the new request's path and "another endpoint", never an RPC a REST client never called;
a key claimed after it keeps its path; the downgrade takes the column away and leaves the keys."""

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from alembic import command

from remit.core.errors import RemitError
from remit.payments import idempotency
from remit.storage.embedded import EmbeddedCluster
from remit.storage.engine import dispose, make_engine
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

pytestmark = pytest.mark.anyio

_BEFORE = "0052_capture_attempts"
_AFTER = "0053_idempotency_request_path"
NOW = datetime.now(UTC)


@pytest.fixture
def database_before(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "idempotency_request_path") as url:
        upgrade("core", url, _BEFORE)
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(
                "INSERT INTO accounts (id, created_at, default_currency, raw_card_access, "
                "fee_percent_bps, fee_fixed_minor, available_delay_days, automatic_payouts, "
                "radar_enabled) VALUES ('acct_1', now(), 'usd', false, 290, 30, 2, false, true)"
            )
            db.execute(
                "INSERT INTO idempotency_keys (account_id, key, endpoint, request_digest, "
                "request_body, recovery_point, response_code, response_body, created_at, "
                "last_run_at, owner) VALUES ('acct_1', 'old', 'CreateRefund', '\\x00', '\\x00', "
                "'finished', 0, '\\x01', %s, %s, 'o')",
                (NOW, NOW),
            )
        yield url


def _columns(url: str) -> set[str]:
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'idempotency_keys'"
        ).fetchall()
    return {str(row[0]) for row in rows}


async def test_keys_stored_before_have_no_path_and_the_downgrade_removes_the_column(
    database_before: str,
) -> None:
    url = database_before
    # On to the latest schema: the code below is this version's, which reads the columns of
    # every later migration too. The keys stored before 0053 are still as 0053 left them.
    upgrade("core", url, _AFTER)
    upgrade("core", url, "head")
    engine = make_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), pool_size=1)
    try:
        async with engine.begin() as db:
            with pytest.raises(RemitError) as refused:
                await idempotency.begin(
                    db,
                    account_id="acct_1",
                    key="old",
                    endpoint="CreatePayout",
                    request_body=b"\x00",
                    request_id=None,
                    now=NOW,
                    request_path="/v1/payouts",
                )
        assert "('/v1/payouts' vs another endpoint)" in refused.value.message
        async with engine.begin() as db:
            await idempotency.begin(
                db,
                account_id="acct_1",
                key="new",
                endpoint="CreatePayout",
                request_body=b"\x00",
                request_id=None,
                now=NOW,
                request_path="/v1/payouts",
            )
    finally:
        await dispose(engine)
    with psycopg.connect(url) as db:
        kept = db.execute("SELECT key, request_path FROM idempotency_keys ORDER BY key")
        assert kept.fetchall() == [("new", "/v1/payouts"), ("old", None)]

    command.downgrade(alembic_config("core", url), _BEFORE)
    assert "request_path" not in _columns(url)
    with psycopg.connect(url) as db:
        keys = db.execute("SELECT key, endpoint FROM idempotency_keys ORDER BY key")
        assert keys.fetchall() == [("new", "CreatePayout"), ("old", "CreateRefund")]
