"""The facade's per-client-address limit, on a platform whose limit is set low: counted on
failed authentications, never on authenticated requests, and on the key-less 3-D Secure pages.
Each test comes from an address of its own (X-Forwarded-For, which the facade trusts from
loopback), so each has a bucket of its own."""

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.accounts import create_account
from tests.support.platform import RunningPlatform, running_platform
from tests.support.postgres import WorkerDatabases
from tests.support.waiting import wait_for

pytestmark = [
    # One worker starts the module's platform, not both.
    pytest.mark.xdist_group("client_rate_limits"),
    pytest.mark.own_platform(reason="platforms with a low per-address limit and no trusted proxy"),
]

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


def _balance(platform: RunningPlatform, key: str, address: str) -> httpx.Response:
    return httpx.get(
        f"{platform.api_base}/v1/balance",
        headers={"Authorization": f"Bearer {key}", "X-Forwarded-For": address},
    )


def test_requests_with_wrong_keys_are_held_to_the_clients_limit(limited: RunningPlatform) -> None:
    account = create_account(limited.core, token=limited.internal_token)
    address = "203.0.113.10"
    # A merchant sharing the guesser's address, whose key was found good just before (twice:
    # the first request pins the account's API version, which drops the key from the cache).
    for _ in range(2):
        assert _balance(limited, account.secret_key, address).status_code == 200
    # One after another: each failure is counted before the next guess arrives.
    answers = [_balance(limited, f"sk_test_guess{n:012d}", address) for n in range(3)]
    assert [a.status_code for a in answers] == [401, 429, 429]
    error = answers[1].json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "rate_limit")
    # The merchant's known key still works from the exhausted address.
    assert _balance(limited, account.secret_key, address).status_code == 200
    # Another client is not held back by this one.
    other = _balance(limited, account.secret_key, "198.51.100.20")
    assert other.status_code == 200, other.text


def test_wrong_keys_sent_all_at_once_are_held_to_the_clients_limit(
    limited: RunningPlatform,
) -> None:
    address = "203.0.113.15"

    def guess(n: int) -> httpx.Response:
        return _balance(limited, f"sk_test_burst{n:013d}", address)

    answers = _burst(guess)
    # The address's one request is taken before its key is looked up, so only one of the
    # wrong keys in flight together reaches the accounts service; the others wait their turn.
    assert sorted(a.status_code for a in answers) == [401] + [429] * (AT_ONCE - 1)


def test_a_burst_with_one_good_key_not_yet_known_is_never_held_back(
    limited: RunningPlatform,
) -> None:
    account = create_account(limited.core, token=limited.internal_token)
    address = "203.0.113.16"

    def pay(n: int) -> httpx.Response:
        return _balance(limited, account.secret_key, address)

    # The key has never been looked up: the first request looks it up, holding the address's
    # one request meanwhile, and the others share its answer instead of each reserving one.
    answers = _burst(pay)
    assert [a.status_code for a in answers] == [200] * AT_ONCE, [a.text for a in answers]


def test_authenticated_requests_never_count_against_their_address(
    limited: RunningPlatform,
) -> None:
    account = create_account(limited.core, token=limited.internal_token)
    address = "203.0.113.20"
    answers = [_balance(limited, account.secret_key, address) for _ in range(AT_ONCE)]
    assert [a.status_code for a in answers] == [200] * AT_ONCE
    # The address's one failure a bucket holds is still there for a wrong key.
    assert _balance(limited, "sk_test_guess000000000001", address).status_code == 401


def test_an_ipv6_client_is_counted_by_its_64(limited: RunningPlatform) -> None:
    first = _balance(limited, "sk_test_guess000000000002", "2001:db8:5:6::1")
    neighbour = _balance(limited, "sk_test_guess000000000003", "2001:db8:5:6:ffff::2")
    elsewhere = _balance(limited, "sk_test_guess000000000004", "2001:db8:5:7::1")
    assert [first.status_code, neighbour.status_code, elsewhere.status_code] == [401, 429, 401]


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


@pytest.fixture(scope="module")
def untrusting(databases: WorkerDatabases) -> Iterator[RunningPlatform]:
    with running_platform(
        databases,
        REMIT_RATE_LIMIT_CLIENT_PER_S=str(PER_S),
        REMIT_FORWARDED_ALLOW_IPS="192.0.2.1",
    ) as running:
        yield running


def test_x_forwarded_for_is_ignored_from_a_proxy_not_listed_as_trusted(
    untrusting: RunningPlatform,
) -> None:
    # Loopback is not among the trusted proxies: both requests count as the peer's own.
    first = _balance(untrusting, "sk_test_guess000000000005", "203.0.113.40")
    second = _balance(untrusting, "sk_test_guess000000000006", "198.51.100.40")
    assert [first.status_code, second.status_code] == [401, 429]
    # Said in the api's log, once, naming the peer and the setting that would trust it.
    ignored = "X-Forwarded-For from 127.0.0.1 is ignored: REMIT_FORWARDED_ALLOW_IPS"
    wait_for(lambda: ignored in untrusting.log_text(), 30, untrusting.log_text)
    assert untrusting.log_text().count(ignored) == 1
