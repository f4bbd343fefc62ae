"""A running platform per test module, shared by its tests; each test makes its own account."""

from collections.abc import Iterator

import pytest
import stripe

from tests.support.accounts import TestAccount, create_account
from tests.support.platform import RunningPlatform, running_platform
from tests.support.postgres import WorkerDatabases


@pytest.fixture(scope="module")
def platform(databases: WorkerDatabases) -> Iterator[RunningPlatform]:
    with running_platform(databases) as running:
        yield running


@pytest.fixture
def account(platform: RunningPlatform) -> TestAccount:
    return create_account(platform.core)


@pytest.fixture
def client(platform: RunningPlatform, account: TestAccount) -> stripe.StripeClient:
    """The official SDK, unchanged, pointed at remit."""
    return stripe.StripeClient(
        account.secret_key,
        base_addresses={"api": platform.api_base},
        max_network_retries=0,
    )
