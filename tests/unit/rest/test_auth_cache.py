"""The authenticator answers a key it has just looked up, found or not, without asking the
accounts service again; a refusal is remembered for less long, and never grows without bound."""

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
