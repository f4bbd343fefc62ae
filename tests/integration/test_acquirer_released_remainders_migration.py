"""Acquirer migration 0005 gives every operation the amount it released of its authorization,
and fills it in for the operations recorded before: the capture that closed an authorization
with less captured than authorized released the rest, an approved void released its amount,
everything else nothing."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import upgrade
from tests.support.postgres import scratch_database

BEFORE = "0004_settlement_grace"
RELEASED = "0005_released_remainders"
T0 = datetime(2031, 3, 14, 12, tzinfo=UTC)


@pytest.fixture
def scratch_acquirer(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "acquirer_released") as url:
        yield url


def _authorization(
    db: psycopg.Connection, auth_id: str, authorized: int, captured: int, state: str
) -> None:
    db.execute(
        "INSERT INTO authorizations (id, merchant_id, currency, authorized_minor, captured_minor,"
        " refunded_minor, state, card_brand, card_funding, card_bin, card_last4, exp_month,"
        " exp_year, created_at, updated_at) VALUES (%s, 'acct_1A', 'usd', %s, %s, 0, %s, 'visa',"
        " 'credit', '424242', '4242', 12, 2034, %s, %s)",
        (auth_id, authorized, captured, state, T0, T0),
    )


def _operation(
    db: psycopg.Connection,
    reference: str,
    kind: str,
    auth_id: str,
    amount: int,
    *,
    approved: bool = True,
    seconds: int = 0,
) -> None:
    db.execute(
        "INSERT INTO operations (id, reference, kind, authorization_id, amount_minor, currency,"
        " merchant_id, approved, request, fee_minor, created_at) VALUES (%s, %s, %s, %s, %s,"
        " 'usd', 'acct_1A', %s, %s, 0, %s)",
        (f"op_{reference}", reference, kind, auth_id, amount, approved, Jsonb({}),
         T0 + timedelta(seconds=seconds)),
    )  # fmt: skip


def test_the_releases_recorded_before_are_filled_in(scratch_acquirer: str) -> None:
    upgrade("acquirer", scratch_acquirer, BEFORE)
    with psycopg.connect(scratch_acquirer) as db:
        # 5000 held, 3000 captured at once: 2000 released by that capture.
        _authorization(db, "auth_partial", 5000, 3000, "closed")
        _operation(db, "a-partial", "authorize", "auth_partial", 5000)
        _operation(db, "c-partial", "capture", "auth_partial", 3000, seconds=1)
        # 1000 held, 400 captured kept open, a refused capture, then 500 closing it: the last
        # approved capture released the other 100.
        _authorization(db, "auth_multi", 1000, 900, "closed")
        _operation(db, "a-multi", "authorize", "auth_multi", 1000)
        _operation(db, "c-multi-1", "capture", "auth_multi", 400, seconds=1)
        _operation(db, "c-multi-2", "capture", "auth_multi", 500, seconds=2)
        _operation(db, "c-multi-3", "capture", "auth_multi", 100, approved=False, seconds=3)
        # Captured in full, a void of what was left after a kept-open capture, and one open.
        _authorization(db, "auth_full", 700, 700, "closed")
        _operation(db, "c-full", "capture", "auth_full", 700, seconds=1)
        _authorization(db, "auth_voided", 1000, 250, "voided")
        _operation(db, "c-voided", "capture", "auth_voided", 250, seconds=1)
        _operation(db, "v-voided", "void", "auth_voided", 750, seconds=2)
        _operation(db, "v-refused", "void", "auth_full", 0, approved=False, seconds=3)
        _authorization(db, "auth_open", 900, 0, "open")
        _operation(db, "a-open", "authorize", "auth_open", 900)

    upgrade("acquirer", scratch_acquirer, RELEASED)
    with psycopg.connect(scratch_acquirer) as db:
        released: dict[str, int] = dict(
            db.execute("SELECT reference, released_minor FROM operations").fetchall()
        )
        with pytest.raises(psycopg.errors.CheckViolation):
            db.execute("UPDATE operations SET released_minor = -1 WHERE reference = 'c-full'")
    assert released == {
        "a-partial": 0,
        "c-partial": 2000,
        "a-multi": 0,
        "c-multi-1": 0,
        "c-multi-2": 100,
        "c-multi-3": 0,
        "c-full": 0,
        "c-voided": 0,
        "v-voided": 750,
        "v-refused": 0,
        "a-open": 0,
    }
