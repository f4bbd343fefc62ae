"""The authenticator answers a key it has just looked up, found or not, without asking the
accounts service again; a refusal is remembered for less long, and never grows without bound."""

import asyncio

import pytest

from remit.accounts.domain import KeyKind, Principal
from remit.rest import auth
from remit.rest.auth import REFUSED_TTL_S, Authenticator
from remit.rest.errors import StripeError

pytestmark = pytest.mark.anyio

KNOWN = "sk_test_known0000000000"
PRINCIPAL = Principal("acct_1", "key_1", KeyKind.SECRET, False, None, False)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Accounts:
    """The accounts service's key look-up, counting its calls."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def lookup(self, key: str) -> Principal | None:
        self.asked.append(key)
        return PRINCIPAL if key == KNOWN else None


async def _refused(authenticator: Authenticator, key: str) -> StripeError:
    with pytest.raises(StripeError) as raised:
        await authenticator.authenticate(f"Bearer {key}")
    return raised.value


async def test_an_unknown_key_is_refused_unasked_for_a_few_seconds() -> None:
    accounts, clock = Accounts(), Clock()
    authenticator = Authenticator(accounts.lookup, clock)
    wrong = "sk_test_wrong0000000000"
    for _ in range(5):
        refused = await _refused(authenticator, wrong)
        assert refused.http_status == 401
    assert accounts.asked == [wrong]
    clock.now += REFUSED_TTL_S
    await _refused(authenticator, wrong)
    assert accounts.asked == [wrong, wrong]
    # A known key is not held back by another's refusal.
    assert await authenticator.authenticate(f"Bearer {KNOWN}") == PRINCIPAL


async def test_remembered_refusals_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "_CACHE_LIMIT", 10)
    accounts, clock = Accounts(), Clock()
    authenticator = Authenticator(accounts.lookup, clock)
    for n in range(20):
        await _refused(authenticator, f"sk_test_flood{n:010d}")
        assert len(authenticator._refused) <= 10
    assert len(authenticator._refused) == 10
    # Full again (ten fresh refusals): expired ones make room before anything fresh is lost.
    clock.now += REFUSED_TTL_S
    await _refused(authenticator, "sk_test_after000000000")
    assert len(authenticator._refused) == 1


class SlowAccounts(Accounts):
    """A look-up that waits until the test lets it answer (or fail)."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = asyncio.Event()
        self.failure: Exception | None = None

    async def lookup(self, key: str) -> Principal | None:
        self.asked.append(key)
        await self.answer.wait()
        if self.failure is not None:
            raise self.failure
        return PRINCIPAL if key == KNOWN else None


async def test_concurrent_requests_with_one_key_share_one_look_up() -> None:
    accounts = SlowAccounts()
    authenticator = Authenticator(accounts.lookup, Clock())
    first = asyncio.ensure_future(authenticator.authenticate(f"Bearer {KNOWN}"))
    await asyncio.sleep(0)
    assert authenticator.looking_up(f"Bearer {KNOWN}")
    assert not authenticator.looking_up("Bearer sk_test_other000000000")
    others = [
        asyncio.ensure_future(authenticator.authenticate(f"Bearer {KNOWN}")) for _ in range(9)
    ]
    await asyncio.sleep(0)
    accounts.answer.set()
    assert await asyncio.gather(first, *others) == [PRINCIPAL] * 10
    assert accounts.asked == [KNOWN]
    assert not authenticator.looking_up(f"Bearer {KNOWN}")


async def test_a_waiting_request_that_goes_away_does_not_cancel_the_shared_look_up() -> None:
    accounts = SlowAccounts()
    authenticator = Authenticator(accounts.lookup, Clock())
    leaving = asyncio.ensure_future(authenticator.authenticate(f"Bearer {KNOWN}"))
    staying = asyncio.ensure_future(authenticator.authenticate(f"Bearer {KNOWN}"))
    await asyncio.sleep(0)
    leaving.cancel()
    accounts.answer.set()
    assert await staying == PRINCIPAL
    assert accounts.asked == [KNOWN]


async def test_a_look_up_that_fails_fails_every_request_sharing_it_and_is_not_remembered() -> None:
    accounts = SlowAccounts()
    accounts.failure = ConnectionError("accounts service unavailable")
    authenticator = Authenticator(accounts.lookup, Clock())
    sharing = [
        asyncio.ensure_future(authenticator.authenticate(f"Bearer {KNOWN}")) for _ in range(3)
    ]
    await asyncio.sleep(0)
    accounts.answer.set()
    results = await asyncio.gather(*sharing, return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)
    assert accounts.asked == [KNOWN]
    accounts.failure = None
    assert await authenticator.authenticate(f"Bearer {KNOWN}") == PRINCIPAL
    assert accounts.asked == [KNOWN, KNOWN]
