"""A 3-D Secure challenge's answer runs under a key of remit's own, which no caller's
Idempotency-Key can reach: the challenge id is public (it is in the page's address), and a
merchant's request keyed `3ds_<challenge id>` neither blocks the cardholder's answer nor is
answered with it. An answer stored under that old key, by an earlier version, is still resumed
or replayed, never sent to the network a second time."""

from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.clock import FixedClock
from remit.core.errors import RemitError
from remit.payments.domain import NewPaymentIntent, Status
from remit.payments.idempotency import RecoveryPoint, find
from remit.payments.keyed import Done, KeyedCall, Replay
from remit.payments.requests import INTERNAL_KEY_PREFIX
from remit.radar import authentication
from remit.radar.authentication import completion_key, legacy_completion_key
from remit.radar.challenges import ThreeDSChallenge
from remit.radar.domain import RuleAction
from tests.integration.radar.test_radar_in_payments import (
    Parts,
    _built,
    _challenge_of,
    pay,
    respond,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def parts(core_engine: AsyncEngine, clock: FixedClock) -> Parts:
    return Parts(core_engine, clock)


@pytest.fixture
async def account_id(core_engine: AsyncEngine) -> str:
    return (await AccountsService(core_engine).create_account()).account.id


async def _waiting_challenge(parts: Parts, account_id: str) -> tuple[str, ThreeDSChallenge]:
    """A payment waiting for its challenge: (its intent's id, the challenge)."""
    await parts.radar.create_rule(
        account_id, RuleAction.REQUEST_THREE_D_SECURE, ":amount_in_usd: > 500"
    )
    intent = await pay(parts, account_id, "big", amount=60000)
    assert intent.status is Status.REQUIRES_ACTION
    return intent.id, await _challenge_of(parts, account_id, intent)


def _as_an_earlier_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """Answer challenges under the key an earlier version used, in the callers' namespace."""
    monkeypatch.setattr(authentication, "completion_key", legacy_completion_key)


async def test_a_merchants_key_named_after_the_challenge_does_not_block_its_answer(
    parts: Parts, account_id: str, core_engine: AsyncEngine
) -> None:
    intent_id, challenge = await _waiting_challenge(parts, account_id)
    # The merchant keys a request of its own after the challenge, as the old inner key was.
    merchants = KeyedCall(
        account_id, f"3ds_{challenge.id}", "CreatePaymentIntent", b"the merchant's own"
    )
    mine = await parts.payments.create_payment_intent(
        merchants, NewPaymentIntent(amount_minor=500, currency="usd"), respond
    )
    assert isinstance(mine, Done)

    answered = await parts.three_d_secure.complete(
        account_id, challenge.id, passed=True, build=_built
    )

    assert isinstance(answered, Done)
    assert answered.value[1].status is Status.SUCCEEDED
    # The merchant's key still answers the merchant's request.
    again = await parts.payments.create_payment_intent(
        merchants, NewPaymentIntent(amount_minor=500, currency="usd"), respond
    )
    assert isinstance(again, Replay)
    assert again.body == respond(mine.value)
    async with core_engine.connect() as db:
        stored = await find(db, account_id, completion_key(challenge.id))
    assert stored is not None
    assert stored.key.startswith(INTERNAL_KEY_PREFIX)
    assert stored.recovery_point is RecoveryPoint.FINISHED
    paid = await parts.payments.get_payment_intent(account_id, intent_id)
    assert paid.status is Status.SUCCEEDED


async def test_an_answer_an_earlier_version_left_unfinished_is_resumed_under_its_old_key(
    parts: Parts, account_id: str, core_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    intent_id, challenge = await _waiting_challenge(parts, account_id)
    with monkeypatch.context() as earlier:
        _as_an_earlier_version(earlier)
        # The authorization happens but its answer is lost, and the look-ups fail too.
        parts.network.faults = ["after"]
        parts.network.lookup_faults = 3
        with pytest.raises(RemitError):
            await parts.three_d_secure.complete(account_id, challenge.id, passed=True, build=_built)
    async with core_engine.connect() as db:
        old = await find(db, account_id, legacy_completion_key(challenge.id))
    assert old is not None
    assert old.recovery_point is RecoveryPoint.ATTEMPT_CREATED

    resumed = await parts.three_d_secure.complete(
        account_id, challenge.id, passed=True, build=_built
    )

    assert isinstance(resumed, Done)
    assert resumed.value[1].status is Status.SUCCEEDED
    paid = await parts.payments.get_payment_intent(account_id, intent_id)
    reference = f"{paid.latest_charge_id}_3ds"
    # Looked up by its reference and found: never sent a second time.
    assert parts.network.sent == [reference]
    async with core_engine.connect() as db:
        assert await find(db, account_id, completion_key(challenge.id)) is None
        old = await find(db, account_id, legacy_completion_key(challenge.id))
    assert old is not None
    assert old.recovery_point is RecoveryPoint.FINISHED


async def test_an_answer_an_earlier_version_finished_is_replayed_from_its_old_key(
    parts: Parts, account_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, challenge = await _waiting_challenge(parts, account_id)
    with monkeypatch.context() as earlier:
        _as_an_earlier_version(earlier)
        first = await parts.three_d_secure.complete(
            account_id, challenge.id, passed=True, build=_built
        )
    assert isinstance(first, Done)

    # A second press after the upgrade, of either button, shows the first press's outcome.
    again = await parts.three_d_secure.complete(
        account_id, challenge.id, passed=False, build=_built
    )

    assert isinstance(again, Replay)
    assert again.body == b"succeeded:succeeded"
    assert len(parts.network.sent) == 1
