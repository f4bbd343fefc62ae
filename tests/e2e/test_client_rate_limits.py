"""The facade's per-client-address limit, on a platform whose limit is set low: counted before
the API key is checked, and on the key-less 3-D Secure pages. Each test comes from an address
of its own (X-Forwarded-For, which the facade trusts from loopback), so each has a bucket of
its own."""

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.accounts import create_account
from tests.support.platform import RunningPlatform, running_platform
from tests.support.postgres import WorkerDatabases

# One request every two seconds: however slow a loaded machine makes each request, the next
# comes before the bucket has refilled.
PER_S = 0.5
AT_ONCE = 6


@pytest.fixture(scope="module")
def limited(databases: WorkerDatabases) -> Iterator[RunningPlatform]:
    with running_platform(databases, REMIT_RATE_LIMIT_CLIENT_PER_S=str(PER_S)) as running:
        yield running


def _burst(send: Callable[[int], httpx.Response]) -> list[httpx.Response]:
    with ThreadPoolExecutor(AT_ONCE) as pool:
        return list(pool.map(send, range(AT_ONCE)))


def test_requests_with_wrong_keys_are_held_to_the_clients_limit(limited: RunningPlatform) -> None:
    def guess(n: int) -> httpx.Response:
        return httpx.get(
            f"{limited.api_base}/v1/balance",
            headers={
                "Authorization": f"Bearer sk_test_guess{n:012d}",
                "X-Forwarded-For": "203.0.113.10",
            },
        )

    answers = _burst(guess)
    assert {a.status_code for a in answers} == {401, 429}
    refused = next(a for a in answers if a.status_code == 429)
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "rate_limit")
    # Another client is not held back by this one.
    account = create_account(limited.core, token=limited.internal_token)
    other = httpx.get(
        f"{limited.api_base}/v1/balance",
        headers={
            "Authorization": f"Bearer {account.secret_key}",
            "X-Forwarded-For": "198.51.100.20",
        },
    )
    assert other.status_code == 200, other.text


def test_the_3d_secure_pages_are_held_to_the_clients_limit(limited: RunningPlatform) -> None:
    headers = {"X-Forwarded-For": "203.0.113.30"}
    page = f"{limited.api_base}/three_d_secure/acct_none/tdsc_none"

    def visit(n: int) -> httpx.Response:
        if n % 2:
            return httpx.post(page, data={"outcome": "succeed"}, headers=headers)
        return httpx.get(page, headers=headers)

    answers = _burst(visit)
    assert {a.status_code for a in answers} == {404, 429}
    refused = next(a for a in answers if a.status_code == 429)
    assert "Too many requests" in refused.text
    assert refused.headers["cache-control"] == "no-store"
