"""A request under an idempotency key recorded before the vault gave cards their account's own
fingerprint knows its card by the fingerprint every account shared; retried after, with the
card stored anew (the account's fingerprint), it is still the same request."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.secrets import Secret
from remit.payment_methods.domain import NewPaymentMethod, PaymentMethod, Token
from remit.payment_methods.service import PaymentMethodsService
from remit.payment_methods.vault_client import GrpcCardVault
from remit.payments.idempotency import IdempotencyMismatchError, digest
from remit.payments.keyed import Done, Keyed, KeyedCall, Replay
from tests.integration.payment_methods.fingerprint_bench import VISA, Bench, fingerprint_bench_for
from tests.support.postgres import WorkerDatabases

pytestmark = pytest.mark.anyio

ENDPOINT = "CreatePaymentMethod"
KEY = "key-from-before-the-upgrade"
MASTERCARD = "5555555555554444"


@pytest.fixture
async def bench(
    core_engine: AsyncEngine, databases: WorkerDatabases, tmp_path: Path
) -> AsyncIterator[Bench]:
    async with fingerprint_bench_for(core_engine, databases, tmp_path) as running:
        yield running


def _service(bench: Bench) -> PaymentMethodsService:
    vault = GrpcCardVault(bench.vault.channel)
    return PaymentMethodsService(bench.core_engine, vault, fingerprint_checks=vault)


def _keyed(bench: Bench, endpoint: str = ENDPOINT) -> Keyed[PaymentMethod]:
    return Keyed(KeyedCall(bench.account_id, KEY, endpoint, b"params"), lambda m: m.id.encode())


async def _store(bench: Bench, number: str = VISA) -> str:
    tokenized = await bench.vault.service.tokenize(
        bench.account_id, Secret(number), 11, 2031, None, requester="api"
    )
    return tokenized.token


async def _recorded_before_the_upgrade(bench: Bench) -> None:
    """The key's request as a core of the version before recorded it: its card known by the
    fingerprint every account shared."""
    async with bench.core_engine.begin() as db:
        body = (
            await db.execute(
                text("SELECT request_body FROM idempotency_keys WHERE key = :key"), {"key": KEY}
            )
        ).scalar_one()
        old = bytes(body).replace(bench.own.encode(), bench.shared.encode())
        assert old != bytes(body)
        await db.execute(
            text(
                "UPDATE idempotency_keys SET request_body = :body, request_digest = :digest "
                "WHERE key = :key"
            ),
            {"body": old, "digest": digest(ENDPOINT, old), "key": KEY},
        )


async def test_a_payment_method_s_retry_replays_the_request_recorded_with_the_shared_fingerprint(
    bench: Bench,
) -> None:
    methods = _service(bench)
    first = await methods.create_once(
        bench.account_id,
        _keyed(bench),
        NewPaymentMethod(vault_token=await _store(bench)),
    )
    assert isinstance(first, Done)
    await _recorded_before_the_upgrade(bench)

    retried = await methods.create_once(
        bench.account_id,
        _keyed(bench),
        NewPaymentMethod(vault_token=await _store(bench)),
    )

    assert isinstance(retried, Replay)
    assert retried.body == first.value.id.encode()


async def test_a_token_s_retry_replays_the_request_recorded_with_the_shared_fingerprint(
    bench: Bench,
) -> None:
    methods = _service(bench)

    def keyed() -> Keyed[Token]:
        return Keyed(
            KeyedCall(bench.account_id, KEY, ENDPOINT, b"params"),
            lambda t: t.id.encode(),
        )

    first = await methods.create_token_once(bench.account_id, keyed(), await _store(bench))
    assert isinstance(first, Done)
    await _recorded_before_the_upgrade(bench)

    retried = await methods.create_token_once(bench.account_id, keyed(), await _store(bench))

    assert isinstance(retried, Replay)
    assert retried.body == first.value.id.encode()


async def test_another_card_under_that_key_is_still_another_request(
    bench: Bench,
) -> None:
    methods = _service(bench)
    await methods.create_once(
        bench.account_id,
        _keyed(bench),
        NewPaymentMethod(vault_token=await _store(bench)),
    )
    await _recorded_before_the_upgrade(bench)

    with pytest.raises(IdempotencyMismatchError):
        await methods.create_once(
            bench.account_id,
            _keyed(bench),
            NewPaymentMethod(vault_token=await _store(bench, MASTERCARD)),
        )


async def test_without_the_vault_s_word_the_retry_is_refused(bench: Bench) -> None:
    methods = PaymentMethodsService(bench.core_engine, GrpcCardVault(bench.vault.channel))
    await methods.create_once(
        bench.account_id,
        _keyed(bench),
        NewPaymentMethod(vault_token=await _store(bench)),
    )
    await _recorded_before_the_upgrade(bench)

    with pytest.raises(IdempotencyMismatchError):
        await methods.create_once(
            bench.account_id,
            _keyed(bench),
            NewPaymentMethod(vault_token=await _store(bench)),
        )
