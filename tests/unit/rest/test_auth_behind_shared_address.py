"""Merchants behind one address (a load balancer's) keep working while a client there guesses
keys: a key found good lately is looked up again, once its cache entry expires, without waiting
on the address's failed authentications, which the guesser has used up. Revoked, it still stops
within the cache's few seconds, and its failure counts against the address like any other."""

import pytest
from starlette.requests import Request

from remit.accounts.domain import KeyKind, Principal
from remit.rest import auth
from remit.rest.app import _authenticated
from remit.rest.auth import CACHE_TTL_S, REFUSED_TTL_S, VOUCHED_TTL_S, Authenticator
from remit.rest.errors import StripeError
from remit.rest.rate_limits import RateLimits, TokenBuckets
from tests.support.rest_facade import faked_dependencies

pytestmark = pytest.mark.anyio

MERCHANT_KEY = "sk_test_merchant00000000"
PRINCIPAL = Principal("acct_1", "key_1", KeyKind.SECRET, False, None, False)
SHARED = "203.0.113.50"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Accounts:
    def __init__(self) -> None:
        self.good = {MERCHANT_KEY}
        self.asked: list[str] = []

    async def lookup(self, key: str) -> Principal | None:
        self.asked.append(key)
        return PRINCIPAL if key in self.good else None


class Facade:
    """The facade's authentication, with a clock of its own; the address's bucket never
    refills (its clock stands still), as under a guesser sending faster than it refills."""

    def __init__(self, per_address: float = 3) -> None:
        self.clock = Clock()
        self.accounts = Accounts()
        self.authenticator = Authenticator(self.accounts.lookup, self.clock)
        self.rate_limits = RateLimits(
            TokenBuckets(0), TokenBuckets(0), TokenBuckets(per_address, Clock())
        )
        self.deps = faked_dependencies(self.authenticator, rate_limits=self.rate_limits)

    async def authenticate(self, key: str) -> Principal:
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/v1/balance",
            "headers": [(b"authorization", f"Bearer {key}".encode())],
            "client": (SHARED, 40000),
        }
        return await _authenticated(Request(scope), self.deps)

    async def status(self, key: str) -> int:
        try:
            await self.authenticate(key)
        except StripeError as error:
            return error.http_status
        return 200

    async def guess_until_held_back(self) -> None:
        for n in range(100):
            if await self.status(f"sk_test_guess{n:011d}") == 429:
                return
        raise AssertionError("the guesser was never held back")


async def test_a_key_found_good_lately_works_from_an_address_a_guesser_has_used_up() -> None:
    facade = Facade()
    assert await facade.authenticate(MERCHANT_KEY) == PRINCIPAL
    await facade.guess_until_held_back()
    for _ in range(3):  # past its cache entry, again and again while the guessing goes on
        facade.clock.now += CACHE_TTL_S
        assert await facade.authenticate(MERCHANT_KEY) == PRINCIPAL
        await facade.guess_until_held_back()
    # Looked up again each time: nothing but the look-up decides whether a key still works.
    assert facade.accounts.asked.count(MERCHANT_KEY) == 4
    # Hours later, still.
    facade.clock.now += VOUCHED_TTL_S - 1
    assert await facade.authenticate(MERCHANT_KEY) == PRINCIPAL


async def test_a_key_never_found_good_is_still_held_to_the_address_limit() -> None:
    facade = Facade()
    await facade.guess_until_held_back()
    assert await facade.status(MERCHANT_KEY) == 429
    assert MERCHANT_KEY not in facade.accounts.asked


async def test_a_key_unused_for_longer_than_it_is_vouched_for_waits_on_the_address_again() -> None:
    facade = Facade()
    assert await facade.authenticate(MERCHANT_KEY) == PRINCIPAL
    await facade.guess_until_held_back()
    facade.clock.now += VOUCHED_TTL_S
    assert await facade.status(MERCHANT_KEY) == 429


async def test_a_revoked_key_stops_within_the_cache_ttl_and_its_failure_counts() -> None:
    facade = Facade(per_address=3)
    assert await facade.authenticate(MERCHANT_KEY) == PRINCIPAL
    facade.accounts.good.clear()  # revoked
    facade.clock.now += CACHE_TTL_S
    assert await facade.status(MERCHANT_KEY) == 401
    # Counted against the address: two of its three failures are left.
    assert [await facade.status(f"sk_test_guess{n:011d}") for n in range(3)] == [401, 401, 429]
    # No longer vouched for: held to the (used-up) address like any unknown key.
    facade.clock.now += REFUSED_TTL_S
    assert await facade.status(MERCHANT_KEY) == 429


async def test_vouched_keys_stay_bounded_and_the_least_recently_found_good_goes_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth, "_CACHE_LIMIT", 3)
    facade = Facade()
    keys = [f"sk_test_merchant{n:08d}" for n in range(5)]
    facade.accounts.good.update(keys)
    for key in keys:
        await facade.authenticate(key)
        facade.clock.now += 1
    assert len(facade.authenticator._vouched) == 3
    assert [facade.authenticator.vouched(f"Bearer {key}") for key in keys] == [
        False,
        False,
        True,
        True,
        True,
    ]
