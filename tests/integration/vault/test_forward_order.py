"""What a forwarded authorization guarantees however few statements it takes: the audit event
is committed before the card leaves the vault, the first answer recorded for a reference stands
and is handed only to forwards of the same operation, a test id whose card was deleted does not
resolve again, concurrent resolutions of a test id agree on one card, and no ROLLBACK throws the
prepared statements away."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind
from remit.storage.engine import dispose, make_engine, single_statement
from remit.vault.domain import ForwardRequest, OutboundAuthorization
from remit.vault.forward_replay import request_digest
from remit.vault.keystore import FileKeyStore
from remit.vault.repository import SqlVaultRepository
from remit.vault.service import VaultError, VaultService
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import START
from tests.support.postgres import WorkerDatabases
from tests.support.statements import statements_sent
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


class ConcurrentForward:
    """Another forward with the same reference, recording `answer` for `request` while the
    watched forward is at its destination: committed at once (`holds_open` False), before the
    watched forward records its own answer; or committed only while the watched forward is
    recording (after that statement took its snapshot)."""

    def __init__(
        self,
        engine: AsyncEngine,
        request: ForwardRequest,
        answer: vault_pb2.ForwardedAuthorization,
        *,
        holds_open: bool,
    ) -> None:
        self._engine = engine
        self._request = request
        self._answer = answer
        self._holds_open = holds_open
        self._inserted = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # The card both forwards name, once it is stored.
        self.token = ""

    async def _record(self, token: str) -> None:
        async with self._engine.begin() as db:
            await db.execute(
                text(
                    "INSERT INTO forwards (account_id, reference, token, destination, result, "
                    "request_digest, created_at) "
                    "VALUES ('acct_1', :r, :token, :destination, :result, :digest, now())"
                ),
                {
                    "r": self._request.reference,
                    "token": token,
                    "destination": self._request.destination,
                    "result": self._answer.SerializeToString(),
                    "digest": request_digest(token, self._request),
                },
            )
            self._inserted.set()
            if self._holds_open:
                await asyncio.sleep(0.5)

    async def race(self, outbound: OutboundAuthorization) -> None:
        """What the watched forward's destination does: start the other forward (of the card
        `token` names), and go on once the other has written its answer."""
        self._tasks.append(asyncio.create_task(self._record(self.token)))
        await self._inserted.wait()

    async def finished(self) -> None:
        for task in self._tasks:
            await task


EARLIER = vault_pb2.ForwardedAuthorization(approved=False, decline_code="generic_decline")


@pytest.mark.parametrize("holds_open", [False, True], ids=["committed", "committing"])
async def test_an_answer_recorded_concurrently_for_the_same_operation_stands(
    vault_engine: AsyncEngine, tmp_path: Path, holds_open: bool
) -> None:
    other = ConcurrentForward(vault_engine, _request("op_raced"), EARLIER, holds_open=holds_open)
    destination = WatchingDestination(other.race)
    async with _service(vault_engine, tmp_path, destination) as service:
        card = await service.resolve_test_card("acct_1", "pm_card_visa", requester="core")
        other.token = card.token
        forwarded = await service.forward("acct_1", card.token, _request("op_raced"))
        await other.finished()
        assert (forwarded.replayed, forwarded.result) == (True, EARLIER)
        again = await service.forward("acct_1", card.token, _request("op_raced"))
        assert (again.replayed, again.result) == (True, EARLIER)
        assert len(destination.sent) == 1


@pytest.mark.parametrize("holds_open", [False, True], ids=["committed", "committing"])
async def test_an_answer_recorded_concurrently_for_other_parameters_is_not_handed_over(
    vault_engine: AsyncEngine, tmp_path: Path, holds_open: bool
) -> None:
    """Both forwards passed the look-up before either recorded an answer; the one that records
    second must not be told the other's answer, which is for another amount."""
    approved = vault_pb2.ForwardedAuthorization(approved=True, authorization_id="auth_other")
    other_amount = replace(_request("op_raced"), amount_minor=9900)
    other = ConcurrentForward(vault_engine, other_amount, approved, holds_open=holds_open)
    destination = WatchingDestination(other.race)
    async with _service(vault_engine, tmp_path, destination) as service:
        card = await service.resolve_test_card("acct_1", "pm_card_visa", requester="core")
        other.token = card.token
        with pytest.raises(VaultError) as refused:
            await service.forward("acct_1", card.token, _request("op_raced"))
        await other.finished()
        assert (refused.value.kind, refused.value.code) == (
            ErrorKind.FAILED_PRECONDITION,
            "reference_reused",
        )
        # Its retry is refused before the card is opened; the other's is answered.
        with pytest.raises(VaultError):
            await service.forward("acct_1", card.token, _request("op_raced"))
        again = await service.forward("acct_1", card.token, other_amount)
        assert (again.replayed, again.result) == (True, approved)
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
        # The look-up of the reference's answer and the card (the re-read of an answer runs
        # only when a concurrent forward commits one mid-statement, never here).
        assert ["SELECT", "f.result", "AS"] in kept
        assert ["WITH", "recorded", "AS"] in kept
        assert ["WITH", "held", "AS"] in kept
    finally:
        await empty_vault_database(engine)
        await dispose(engine)


async def test_comparing_parameters_costs_no_statement(
    vault_engine: AsyncEngine, tmp_path: Path
) -> None:
    """The digest rides in the statements a forward runs anyway: a first forward is still the
    look-up, the audit event taking the CVC and the recording; a replay is the look-up alone.
    A refusal adds only its audit event."""
    destination = WatchingDestination(lambda outbound: None)
    async with _service(vault_engine, tmp_path, destination) as service:
        card = await service.resolve_test_card("acct_1", "pm_card_visa", requester="core")
        with statements_sent(vault_engine) as first:
            await service.forward("acct_1", card.token, _request("op_counted"))
        with statements_sent(vault_engine) as replay:
            await service.forward("acct_1", card.token, _request("op_counted"))
        other = replace(_request("op_counted"), currency="eur")
        with statements_sent(vault_engine) as refusal, pytest.raises(VaultError):
            await service.forward("acct_1", card.token, other)
    assert [statement.split(None, 1)[0] for statement in first] == ["SELECT", "WITH", "WITH"]
    assert [statement.split(None, 1)[0] for statement in replay] == ["SELECT"]
    assert [statement.split(None, 1)[0] for statement in refusal] == ["SELECT", "INSERT"]
