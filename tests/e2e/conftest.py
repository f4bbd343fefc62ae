"""A running platform per test module, shared by its tests; each test makes its own account."""

import os
from collections.abc import Iterator

import pytest
import stripe

from remit.storage.embedded import EmbeddedCluster
from tests.support.accounts import TestAccount, create_account
from tests.support.platform import RunningPlatform, forget_earlier_cards, running_platform
from tests.support.postgres import WorkerDatabases, worker_databases


@pytest.fixture(scope="session")
def databases(pg_cluster: EmbeddedCluster) -> Iterator[WorkerDatabases]:
    """Databases of their own for the running platforms: integration tests on the same worker
    empty theirs after every test, which must never happen under a live platform."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with worker_databases(pg_cluster, f"{worker}_e2e") as databases:
        yield databases


@pytest.fixture(scope="module")
def platform(databases: WorkerDatabases) -> Iterator[RunningPlatform]:
    forget_earlier_cards(databases)
    with running_platform(databases) as running:
        yield running


@pytest.fixture
def account(platform: RunningPlatform) -> TestAccount:
    return create_account(platform.core, token=platform.internal_token)


@pytest.fixture
def client(platform: RunningPlatform, account: TestAccount) -> stripe.StripeClient:
    """The official SDK, unchanged, pointed at remit."""
    return stripe.StripeClient(
        account.secret_key,
        base_addresses={"api": platform.api_base},
        max_network_retries=0,
    )
