"""Acquirer migration 0006: the database refuses any write that would have an authorization's
captures and releases add up to more than it held, as a CHECK refuses a row, and refuses to
upgrade a database that already holds one."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import upgrade
from tests.support.postgres import scratch_database

BEFORE = "0005_released_remainders"
BOUNDED = "0006_authorization_amounts"
T0 = datetime(2031, 3, 14, 12, tzinfo=UTC)


@pytest.fixture
def scratch_acquirer(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "acquirer_amounts") as url:
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
    db: psycopg.Connection, reference: str, kind: str, auth_id: str, amount: int, released: int
) -> None:
    db.execute(
        "INSERT INTO operations (id, reference, kind, authorization_id, amount_minor, currency,"
        " merchant_id, approved, request, fee_minor, created_at, released_minor) VALUES (%s, %s,"
        " %s, %s, %s, 'usd', 'acct_1A', true, %s, 0, %s, %s)",
        (f"op_{reference}", reference, kind, auth_id, amount, Jsonb({}),
         T0 + timedelta(seconds=1), released),
    )  # fmt: skip


def _refused(url: str, statement: str) -> str:
    """The message of the check_violation `statement` fails with; its transaction rolls back."""
    with psycopg.connect(url) as db, pytest.raises(psycopg.errors.CheckViolation) as refused:
        db.execute(statement)
    return str(refused.value)


def test_a_write_that_gives_back_more_than_was_held_is_refused(scratch_acquirer: str) -> None:
    upgrade("acquirer", scratch_acquirer, BOUNDED)
    with psycopg.connect(scratch_acquirer) as db:
        # 1000 held, 600 captured by a final capture that released the other 400: the bound
        # is met exactly, and the writes that make it up are taken.
        _authorization(db, "auth_1", 1000, 600, "closed")
        _operation(db, "a-1", "authorize", "auth_1", 1000, 0)
        _operation(db, "c-1", "capture", "auth_1", 600, 400)
        # A void of a second authorization, released in full.
        _authorization(db, "auth_2", 500, 0, "voided")
        _operation(db, "v-2", "void", "auth_2", 500, 500)

    said = _refused(
        scratch_acquirer, "UPDATE operations SET released_minor = 401 WHERE reference = 'c-1'"
    )
    assert "authorization auth_1: captured 600 plus released 401 exceeds the 1000" in said
    for statement in (
        # Another release of the same authorization...
        "INSERT INTO operations (id, reference, kind, authorization_id, amount_minor, currency,"
        " merchant_id, approved, request, fee_minor, created_at, released_minor) VALUES"
        " ('op_v-1', 'v-1', 'void', 'auth_1', 1, 'usd', 'acct_1A', true, '{}', 0, now(), 1)",
        # ...more captured, or less authorized, than the release leaves room for...
        "UPDATE authorizations SET captured_minor = 700 WHERE id = 'auth_1'",
        "UPDATE authorizations SET authorized_minor = 999 WHERE id = 'auth_1'",
        # ...or a release moved onto an authorization it does not fit.
        "UPDATE operations SET authorization_id = 'auth_1' WHERE reference = 'v-2'",
    ):
        assert "exceeds the" in _refused(scratch_acquirer, statement)

    with psycopg.connect(scratch_acquirer) as db:
        amounts = db.execute(
            "SELECT a.id, a.authorized_minor, a.captured_minor, sum(o.released_minor)"
            " FROM authorizations AS a JOIN operations AS o ON o.authorization_id = a.id"
            " GROUP BY a.id ORDER BY a.id"
        ).fetchall()
        # Within the bound, writes are taken: a refund, and a release made smaller.
        db.execute("UPDATE authorizations SET refunded_minor = 100 WHERE id = 'auth_1'")
        db.execute("UPDATE operations SET released_minor = 300 WHERE reference = 'c-1'")
    assert amounts == [("auth_1", 1000, 600, 400), ("auth_2", 500, 0, 500)]


def test_a_database_that_already_gives_back_too_much_is_not_upgraded(
    scratch_acquirer: str,
) -> None:
    upgrade("acquirer", scratch_acquirer, BEFORE)
    with psycopg.connect(scratch_acquirer) as db:
        _authorization(db, "auth_fine", 1000, 600, "closed")
        _operation(db, "c-fine", "capture", "auth_fine", 600, 400)
        _authorization(db, "auth_over", 1000, 600, "closed")
        _operation(db, "c-over", "capture", "auth_over", 600, 500)
    with pytest.raises(Exception, match="auth_over") as refused:
        upgrade("acquirer", scratch_acquirer, BOUNDED)
    assert "auth_fine" not in str(refused.value)
