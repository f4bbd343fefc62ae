"""The running platform the e2e tests call, and its databases; each test makes its own account.

Most modules share one platform per test worker (`shared_platform`), started when a test first
asks for `platform` and stopped at the end of the session: starting `remit serve` costs seconds
each time, and nothing those modules do reaches past the accounts their tests make.

A module whose tests do reach past them is marked `pytest.mark.own_platform(reason=...)`. Its
`platform` is one of its own, started for the module and stopped after it, and its `databases`
are another set of the worker's (`own_databases`), never the shared platform's. So what such a
module does to its platform and databases cannot touch the shared one, running meanwhile: it
may stop, kill or restart processes; start platforms with settings of their own (rate limits,
trusted proxies, a faulty acquirer, several core processes); empty databases after each test
(`core_engine`, `acquirer_engine`); drop every database connection; or look at every row, the
whole log, or every card of the vault. The modules marked, and why:

- test_acquirer_process, test_lookups_at_the_acquirer_process: run `remit acquirer` alone and
  empty the core and acquirer databases after each test.
- test_cards_and_vault: dumps every row of the three databases and reads the whole log for
  card numbers, and rotates the vault's key, which re-wraps every card of the vault.
- test_client_rate_limits, test_rate_limits, test_payment_faults, test_scaled_processes:
  platforms with settings of their own.
- test_crash_recovery, test_pending_refunds, test_processes, test_resilience: kill, stop or
  restart processes, or drop their database connections.

Before a marked module starts, `own_databases` are emptied, the vault too
(`forget_earlier_cards`): only one module runs at a time on a worker, and its platforms and
processes are stopped before the next module's start, so none runs on them then. The shared
platform's databases are never emptied: they are made afresh for the session.

A test in an unmarked module that asks for a database but not for the platform (processes of
its own on the databases, or `core_engine`/`acquirer_engine`, which empty them) is refused at
collection: it would run on the shared platform's databases under it.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import stripe

from remit.storage.embedded import EmbeddedCluster
from tests.support.accounts import TestAccount, create_account
from tests.support.command_databases import empty_core_database
from tests.support.platform import RunningPlatform, forget_earlier_cards, running_platform
from tests.support.postgres import WorkerDatabases, worker_databases

OWN_PLATFORM = "own_platform"
# Fixtures that empty the worker's databases after each test (tests/conftest.py).
_EMPTYING = frozenset({"core_engine", "acquirer_engine"})
_HERE = Path(__file__).parent


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _has_own_platform(node: pytest.Item | pytest.Collector) -> bool:
    """Whether the node's module is marked: the platform and its databases are the module's."""
    module = node.getparent(pytest.Module)
    return module is not None and module.get_closest_marker(OWN_PLATFORM) is not None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    refused = [
        item.nodeid
        for item in items
        if isinstance(item, pytest.Function)
        and _HERE in item.path.parents
        and not _has_own_platform(item)
        and (
            _EMPTYING.intersection(item.fixturenames)
            or ("databases" in item.fixturenames and "platform" not in item.fixturenames)
        )
    ]
    if refused:
        raise pytest.UsageError(
            "these e2e tests use the databases apart from the shared platform; mark their "
            f"modules pytest.mark.{OWN_PLATFORM}(reason=...) (tests/e2e/conftest.py): "
            + ", ".join(refused)
        )


@pytest.fixture(scope="session")
def shared_databases(pg_cluster: EmbeddedCluster) -> Iterator[WorkerDatabases]:
    """The shared platform's databases: of their own, as integration tests on the same worker
    empty theirs after every test, and modules with platforms of their own may empty or
    disturb `own_databases`, which must never happen under a live platform."""
    with worker_databases(pg_cluster, f"{_worker()}_e2e") as databases:
        yield databases


@pytest.fixture(scope="session")
def own_databases(pg_cluster: EmbeddedCluster) -> Iterator[WorkerDatabases]:
    """The databases of the worker's modules marked `own_platform`, one module at a time."""
    with worker_databases(pg_cluster, f"{_worker()}_e2e_own") as databases:
        yield databases


@pytest.fixture(scope="session")
def shared_platform(shared_databases: WorkerDatabases) -> Iterator[RunningPlatform]:
    """One platform for the worker's unmarked modules, stopped at the end of the session."""
    with running_platform(shared_databases) as running:
        yield running


@pytest.fixture(scope="module")
def databases(request: pytest.FixtureRequest) -> WorkerDatabases:
    """The databases under the module's `platform`. A marked module's start empty, before any
    platform of the module starts: what an earlier marked module left there (thousands of
    payments, rows a test tampered with) is not the module's to see."""
    if not _has_own_platform(request.node):
        shared: WorkerDatabases = request.getfixturevalue("shared_databases")
        return shared
    own: WorkerDatabases = request.getfixturevalue("own_databases")
    empty_core_database(own.core_url)
    empty_core_database(own.acquirer_url)
    forget_earlier_cards(own)
    return own


@pytest.fixture(scope="module")
def platform(
    request: pytest.FixtureRequest, databases: WorkerDatabases
) -> Iterator[RunningPlatform]:
    if not _has_own_platform(request.node):
        shared: RunningPlatform = request.getfixturevalue("shared_platform")
        # Ended by an earlier module: say so here, not as every later test's connection error.
        if shared.process.poll() is not None:
            pytest.fail(f"the shared platform has exited; its log:\n{shared.log_text()[-5000:]}")
        yield shared
        return
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
