"""2,000 payments through an acquirer that fails 5% of calls, times out on 5% and loses 5% of
its responses, with clients retrying under their idempotency keys: not one payment is lost,
none is authorized twice, and every intent agrees with the acquirer's records."""

import asyncio
import json
from collections.abc import Iterator

import aiohttp
import pytest
from sqlalchemy import create_engine, text

from remit.storage.embedded import to_sqlalchemy_url
from tests.support.accounts import TestAccount, create_account
from tests.support.platform import RunningPlatform, running_platform
from tests.support.postgres import WorkerDatabases

PAYMENTS = 2000
CONCURRENCY = 16
FAULTY_ACQUIRER = {
    "REMIT_ACQUIRER_ERROR_RATE": "0.05",
    "REMIT_ACQUIRER_TIMEOUT_RATE": "0.05",
    "REMIT_ACQUIRER_LOST_RESPONSE_RATE": "0.05",
    "REMIT_ACQUIRER_FAULT_SEED": "20261122",
    # Short deadlines so the 5% of timeouts cost seconds, not minutes; a request whose owner
    # gave up is taken over by its retry after a short lease.
    "REMIT_NETWORK_TIMEOUT_S": "1",
    "REMIT_IDEMPOTENCY_LEASE_S": "3",
}
pytestmark = [
    pytest.mark.xdist_group("faults"),
    pytest.mark.own_platform(
        reason="a platform whose acquirer fails, times out and loses responses"
    ),
]


@pytest.fixture(scope="module")
def faulty_platform(databases: WorkerDatabases) -> Iterator[RunningPlatform]:
    with running_platform(databases, **FAULTY_ACQUIRER) as running:
        yield running


async def _pay_until_answered(
    session: aiohttp.ClientSession, platform: RunningPlatform, account: TestAccount, n: int
) -> dict[str, object]:
    """What a careful client does: retry with the same key until it gets a final answer."""
    body = {
        "amount": str(1000 + n),
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "confirm": "true",
        "return_url": "https://shop.example/return",
        "metadata[n]": str(n),
    }
    headers = {"Authorization": f"Bearer {account.secret_key}", "Idempotency-Key": f"pay-{n}"}
    for attempt in range(60):
        async with session.post(
            f"{platform.api_base}/v1/payment_intents", data=body, headers=headers
        ) as response:
            payload: dict[str, object] = json.loads(await response.text())
            if response.status in (200, 402):
                return payload
            assert response.status in (409, 500, 503), payload
        await asyncio.sleep(min(2.0, 0.05 * 2**attempt))
    raise AssertionError(f"payment {n} never got a final answer")


async def _run_payments(platform: RunningPlatform, account: TestAccount) -> list[dict[str, object]]:
    limiter = asyncio.Semaphore(CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(n: int) -> dict[str, object]:
            async with limiter:
                return await _pay_until_answered(session, platform, account, n)

        return await asyncio.gather(*(one(n) for n in range(PAYMENTS)))


def _rows(url: str, query: str, account_id: str) -> list[tuple[object, ...]]:
    engine = create_engine(to_sqlalchemy_url(url))
    try:
        with engine.connect() as db:
            return [tuple(row) for row in db.execute(text(query), {"account": account_id})]
    finally:
        engine.dispose()


@pytest.mark.timeout(900)
def test_faults_lose_no_payment_and_authorize_none_twice(
    faulty_platform: RunningPlatform,
) -> None:
    # One card paying 2,000 times in a minute is what Radar's velocity rules exist to stop;
    # this test is about the network's faults, so Radar is off for this account.
    account = create_account(
        faulty_platform.core, token=faulty_platform.internal_token, radar_enabled=False
    )
    answers = asyncio.run(_run_payments(faulty_platform, account))

    assert [a["object"] for a in answers] == ["payment_intent"] * PAYMENTS
    assert {a["status"] for a in answers} == {"succeeded"}
    assert len({a["id"] for a in answers}) == PAYMENTS

    env = faulty_platform.env
    intents = _rows(
        env["DATABASE_URL"],
        "SELECT id, status, latest_charge_id, amount_received_minor FROM payment_intents "
        "WHERE account_id = :account",
        account.id,
    )
    charges = _rows(
        env["DATABASE_URL"],
        "SELECT id, payment_intent_id, status, amount_captured_minor FROM charges "
        "WHERE account_id = :account",
        account.id,
    )
    authorizations = _rows(
        env["ACQUIRER_DATABASE_URL"],
        "SELECT reference, approved FROM operations WHERE kind = 'authorize' "
        "AND merchant_id = :account",
        account.id,
    )
    # Zero lost payments: one intent per client request, each succeeded.
    assert len(intents) == PAYMENTS
    assert {status for _, status, _, _ in intents} == {"succeeded"}
    # One charge attempt per intent, and exactly one authorization per charge at the acquirer.
    assert len(charges) == PAYMENTS
    references = [reference for reference, _ in authorizations]
    assert len(references) == len(set(references)) == PAYMENTS
    assert set(references) == {charge_id for charge_id, _, _, _ in charges}
    assert all(approved for _, approved in authorizations)
    # Every intent agrees with the acquirer: its charge was authorized and captured in full.
    by_charge = {
        charge_id: (intent_id, status, captured)
        for charge_id, intent_id, status, captured in charges
    }
    for intent_id, _, latest_charge, received in intents:
        assert by_charge[latest_charge] == (intent_id, "succeeded", received)
