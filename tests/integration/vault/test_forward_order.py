"""What a forwarded authorization guarantees however few statements it takes: the audit event
is committed before the card leaves the vault, the first answer recorded for a reference stands,
a test id whose card was deleted does not resolve again, concurrent resolutions of a test id
agree on one card, and no ROLLBACK throws the prepared statements away."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.storage.engine import dispose, make_engine, single_statement
from remit.vault.domain import ForwardRequest, OutboundAuthorization
from remit.vault.keystore import FileKeyStore
from remit.vault.repository import SqlVaultRepository
from remit.vault.service import VaultError, VaultService
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import START
from tests.support.postgres import WorkerDatabases
from tests.support.vault import empty_vault_database

pytestmark = pytest.mark.anyio

PREPARE_THRESHOLD = 5  # make_engine's: psycopg prepares a statement at its fifth execution


class WatchingDestination:
    """Answers every authorization; first runs `on_authorize` (what the acquirer would see)."""

    def __init__(self, on_authorize: Callable[[OutboundAuthorization], object]) -> None:
        self._on_authorize = on_authorize
        self.sent: list[OutboundAuthorization] = []

    async def authorize(self, outbound: OutboundAuthorization) -> vault_pb2.ForwardedAuthorization:
        seen = self._on_authorize(outbound)
        if asyncio.iscoroutine(seen):
            await seen
        self.sent.append(outbound)
        return vault_pb2.ForwardedAuthorization(approved=True, authorization_id="auth_new")

    async def close(self) -> None:
        return None


@asynccontextmanager
async def _service(
    engine: AsyncEngine,
    tmp_path: Path,
    destination: WatchingDestination,
) -> AsyncIterator[VaultService]:
    keys = FileKeyStore(tmp_path / "keys.json")
    keys.ensure_exists()
    service = VaultService(
        engine,
        keys,
        {"acquirer": destination},
        clock=FixedClock(START),
    )
    try:
        yield service
    finally:
        await service.close()


def _request(reference: str) -> ForwardRequest:
    return ForwardRequest(
        destination="acquirer",
        amount_minor=2000,
        currency="usd",
        reference=reference,
        capture=True,
        purpose="payment_intent.confirm pi_test",
        requester="core",
    )


async def test_the_audit_event_is_committed_before_the_card_is_sent(
    vault_engine: AsyncEngine, tmp_path: Path
) -> None:
    committed: list[tuple[str, bool]] = []

    async def look(outbound: OutboundAuthorization) -> None:
        # Another connection sees only committed rows.
        async with vault_engine.begin() as db:
            rows = await db.execute(
                text("SELECT action, succeeded FROM audit_events WHERE reference = :r"),
                {"r": outbound.reference},
            )
            committed.extend((row[0], row[1]) for row in rows)

    destination = WatchingDestination(look)
    async with _service(vault_engine, tmp_path, destination) as service:
        card = await service.resolve_test_card("acct_1", "pm_card_visa", requester="core")
        forwarded = await service.forward("acct_1", card.token, _request("op_watched"))
        assert not forwarded.replayed
        assert committed == [("forward", True)]


async def test_an_answer_recorded_concurrently_for_the_reference_stands(
    vault_engine: AsyncEngine, tmp_path: Path
) -> None:
    earlier = vault_pb2.ForwardedAuthorization(approved=False, decline_code="generic_decline")
    inserted = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def concurrent_call(reference: str) -> None:
        # Another call with the same reference records its answer first, and commits only
        # while this call is recording its own (after that statement took its snapshot).
        async with vault_engine.begin() as db:
            await db.execute(
                text(
                    "INSERT INTO forwards (account_id, reference, token, destination, result, "
                    "created_at) VALUES ('acct_1', :r, 'vtok_other', 'acquirer', :result, now())"
                ),
                {"r": reference, "result": earlier.SerializeToString()},
            )
            inserted.set()
            await asyncio.sleep(0.5)

    async def start_concurrent_call(outbound: OutboundAuthorization) -> None:
        tasks.append(asyncio.create_task(concurrent_call(outbound.reference)))
        await inserted.wait()

    destination = WatchingDestination(start_concurrent_call)
    async with _service(vault_engine, tmp_path, destination) as service:
        card = await service.resolve_test_card("acct_1", "pm_card_visa", requester="core")
        forwarded = await service.forward("acct_1", card.token, _request("op_raced"))
        await tasks[0]
        assert (forwarded.replayed, forwarded.result) == (True, earlier)
        again = await service.forward("acct_1", card.token, _request("op_raced"))
        assert (again.replayed, again.result) == (True, earlier)
        assert len(destination.sent) == 1


async def test_a_test_id_whose_card_was_deleted_gets_a_new_card(
    vault_engine: AsyncEngine, tmp_path: Path
) -> None:
    """A test id names its card for good (pm_card_visa always works): once its card is
    deleted, the next resolution seals the number again under a new token; the old token
    stays deleted."""
    async with _service(
        vault_engine, tmp_path, WatchingDestination(lambda outbound: None)
    ) as service:
        card = await service.resolve_test_card("acct_1", "pm_card_visa", requester="core")
        again = await service.resolve_test_card("acct_1", "pm_card_visa", requester="core")
        assert again == card
        assert await service.delete_card("acct_1", card.token, requester="t")
        renewed = await service.resolve_test_card("acct_1", "pm_card_visa", requester="core")
        assert renewed.token != card.token
        assert renewed.summary == card.summary
        assert await service.resolve_test_card("acct_1", "pm_card_visa", requester="core") == (
            renewed
        )
        with pytest.raises(VaultError) as caught:
            await service.forward("acct_1", card.token, _request("op_old_token"))
        assert caught.value.param == "vault_token"
        forwarded = await service.forward("acct_1", renewed.token, _request("op_new_token"))
        assert forwarded.result.approved
        other = await service.resolve_test_card("acct_2", "pm_card_visa", requester="core")
        assert other.token not in (card.token, renewed.token)


async def test_concurrent_resolutions_after_a_deletion_agree_on_one_new_card(
    vault_engine: AsyncEngine, tmp_path: Path
) -> None:
    async with _service(
        vault_engine, tmp_path, WatchingDestination(lambda outbound: None)
    ) as service:
        card = await service.resolve_test_card("acct_1", "pm_card_visa", requester="core")
        assert await service.delete_card("acct_1", card.token, requester="t")
        resolved = await asyncio.gather(
            *(
                service.resolve_test_card("acct_1", "pm_card_visa", requester="core")
                for _ in range(6)
            )
        )
        assert len({found.token for found in resolved}) == 1
        assert resolved[0].token != card.token


async def test_concurrent_first_resolutions_agree_on_one_card_and_shred_the_others(
    vault_engine: AsyncEngine, tmp_path: Path
) -> None:
    """Each first resolution of a test id stores a card, and only one can claim the test id;
    every other card was stored in vain and is shredded, and audited as a deletion like any
    other (its tokenization was audited too)."""
    async with _service(
        vault_engine, tmp_path, WatchingDestination(lambda outbound: None)
    ) as service:
        resolved = await asyncio.gather(
            *(
                service.resolve_test_card("acct_1", "pm_card_visa", requester="core")
                for _ in range(6)
            )
        )
    assert len({found.token for found in resolved}) == 1
    async with vault_engine.connect() as db:
        live = (
            (await db.execute(text("SELECT token FROM cards WHERE deleted_at IS NULL")))
            .scalars()
            .all()
        )
        shredded = (
            (await db.execute(text("SELECT token FROM cards WHERE deleted_at IS NOT NULL")))
            .scalars()
            .all()
        )
        deletions = (
            (await db.execute(text("SELECT token FROM audit_events WHERE action = 'delete'")))
            .scalars()
            .all()
        )
    assert live == [resolved[0].token]
    # Six at once: at least two stored a card before either claimed the test id.
    assert shredded
    assert sorted(deletions) == sorted(shredded)


async def test_claiming_a_test_id_another_card_holds_reports_the_loss(
    vault_engine: AsyncEngine,
) -> None:
    """The claim's result decides which card is shredded, so it must say when it lost, both
    for a first claim and for one replacing a deleted card."""
    claims = (
        ("vtok_first", None, True),
        ("vtok_second", None, False),
        ("vtok_renewed", "vtok_first", True),
        ("vtok_late", "vtok_first", False),
    )
    for token, replacing, wins in claims:
        async with vault_engine.begin() as db:
            won = await SqlVaultRepository(db).claim_test_card_token(
                "acct_1", "pm_card_visa", token, replacing=replacing
            )
        assert won is wins, f"the claim of {token} replacing {replacing}"


async def test_forwarding_keeps_its_statements_prepared(
    databases: WorkerDatabases, tmp_path: Path
) -> None:
    # The one-statement units run one after another here, so on one direct connection (the
    # pool hands back the one it was given last): a ROLLBACK on it would make psycopg
    # deallocate every statement.
    engine = make_engine(databases.vault_url, pool_size=1)
    destination = WatchingDestination(lambda outbound: None)
    try:
        async with _service(engine, tmp_path, destination) as service:
            card = await service.resolve_test_card("acct_1", "pm_card_visa", requester="core")
            for number in range(PREPARE_THRESHOLD + 2):
                await service.forward("acct_1", card.token, _request(f"op_prepared_{number}"))
        async with single_statement(engine) as connection:
            cursor = await connection.execute("SELECT statement FROM pg_prepared_statements")
            prepared = [str(row[0]) for row in await cursor.fetchall()]
            kept = [statement.replace('"', "").split(None, 3)[:3] for statement in prepared]
        assert ["SELECT", "(SELECT", "f.result"] in kept
        assert ["WITH", "recorded", "AS"] in kept
        assert ["WITH", "held", "AS"] in kept
    finally:
        await empty_vault_database(engine)
        await dispose(engine)
