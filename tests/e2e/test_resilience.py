"""`remit serve` rides out what a production host throws at it: every database connection
dropped at once (a PostgreSQL restart, a network blip), and a process of its own killed.

Requests caught in it fail with a retryable error, never a bare 500; a retry with the same
idempotency key finishes them once; no process gives up, and one that dies is started again."""

import signal
from collections.abc import Iterator

import psutil
import psycopg
import pytest
import stripe

from remit.worker.runner import libpq_url
from tests.support.accounts import TestAccount, create_account
from tests.support.platform import (
    ROLES,
    RunningPlatform,
    children_by_role,
    forget_earlier_cards,
    running_platform,
)
from tests.support.postgres import WorkerDatabases
from tests.support.waiting import wait_for

pytestmark = [
    # One worker starts the module's platform, not both.
    pytest.mark.xdist_group("resilience"),
    pytest.mark.own_platform(
        reason="drops every database connection and kills its platform's processes"
    ),
]


@pytest.fixture(scope="module")
def own_platform(databases: WorkerDatabases) -> Iterator[RunningPlatform]:
    # Its own platform: the module drops its connections and kills its processes.
    forget_earlier_cards(databases)
    with running_platform(databases) as platform:
        yield platform


@pytest.fixture(scope="module")
def own_account(own_platform: RunningPlatform) -> TestAccount:
    return create_account(own_platform.core, token=own_platform.internal_token, radar_enabled=False)


def _client(platform: RunningPlatform, account: TestAccount, retries: int) -> stripe.StripeClient:
    return stripe.StripeClient(
        account.secret_key,
        base_addresses={"api": platform.api_base},
        max_network_retries=retries,
    )


def _pay(client: stripe.StripeClient, key: str) -> stripe.PaymentIntent:
    return client.v1.payment_intents.create(
        params={
            "amount": 1500,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": "https://shop.example/return",
        },
        options={"idempotency_key": key},
    )


def _children(platform: RunningPlatform) -> dict[str, int]:
    return {role: child.pid for role, child in children_by_role(platform.process.pid).items()}


def _drop_platform_connections(databases: WorkerDatabases) -> int:
    """End every session the platform's processes hold, on all three databases."""
    ended = 0
    for url in (databases.core_url, databases.vault_url, databases.acquirer_url):
        with psycopg.connect(libpq_url(url), autocommit=True) as admin:
            row = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND application_name LIKE 'remit-%%' AND application_name <> 'remit-cli'"
            ).fetchone()
            assert row is not None
            ended += int(row[0])
    return ended


def test_dropping_every_database_connection_costs_retries_not_payments(
    own_platform: RunningPlatform, databases: WorkerDatabases
) -> None:
    # An account and a stretch of the log of this test's own: the module's tests that kill
    # processes may have run before it, on the same platform.
    account = create_account(
        own_platform.core, token=own_platform.internal_token, radar_enabled=False
    )
    log_start = len(own_platform.log_text())
    no_retries = _client(own_platform, account, retries=0)
    assert _pay(no_retries, "before-drop").status == "succeeded"
    before = _children(own_platform)
    assert set(before) == set(ROLES)

    assert _drop_platform_connections(databases) > 0
    failed: dict[str, tuple[int | None, str | None]] = {}
    for n in range(6):
        key = f"after-drop-{n}"
        try:
            assert _pay(no_retries, key).status == "succeeded"
        except stripe.APIError as error:
            headers = error.headers or {}
            failed[key] = (error.http_status, headers.get("Stripe-Should-Retry"))
    # Never a bare internal error: a request caught in it is told the retry is safe.
    assert all(answer == (503, "true") for answer in failed.values()), failed
    retrying = _client(own_platform, account, retries=3)
    for key in failed:
        assert _pay(retrying, key).status == "succeeded"
    for n in range(3):
        assert _pay(no_retries, f"settled-{n}").status == "succeeded"

    # Nothing gave up: the same processes serve as before (the worker used to exit, and the
    # platform with it).
    assert _children(own_platform) == before
    assert own_platform.process.poll() is None
    assert "exited unexpectedly" not in own_platform.log_text()[log_start:]
    # Each key made one payment, however many times it was sent.
    listed = no_retries.v1.payment_intents.list(params={"limit": 100})
    assert len(listed.data) == 1 + 6 + 3


@pytest.mark.parametrize("role", ["worker", "core", "vault"])
def test_a_killed_process_is_started_again_and_payments_go_on(
    own_platform: RunningPlatform, own_account: TestAccount, role: str
) -> None:
    before = _children(own_platform)
    psutil.Process(before[role]).send_signal(signal.SIGKILL)
    wait_for(
        lambda: (
            _children(own_platform).get(role) not in (None, before[role])
            and f"{role} restarted" in own_platform.log_text()
        ),
        60,
        own_platform.log_text,
    )
    after = _children(own_platform)
    assert {r: p for r, p in after.items() if r != role} == {
        r: p for r, p in before.items() if r != role
    }
    assert own_platform.process.poll() is None
    intent = _pay(_client(own_platform, own_account, retries=3), f"after-kill-{role}")
    assert intent.status == "succeeded"
