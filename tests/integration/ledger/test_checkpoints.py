"""Checkpoints kept outside the database show history that whoever can write the database
rewrote, hashes recomputed and all, which the hash chains alone cannot (`remit.ledger.anchoring`).
"""

import json
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import FixedClock
from remit.core.secrets import Secret
from remit.ledger import journal
from remit.ledger import verify as verify_module
from remit.ledger.anchoring import CheckpointFile
from remit.ledger.checkpoint_task import checkpoint_task
from remit.ledger.checkpoints import (
    CheckpointKeys,
    CheckpointLine,
    RetiredKey,
    key_id,
    read_file,
)
from remit.ledger.domain import Posting, TransactionRequest, chain_hash
from remit.ledger.repository import JournalRepository, transaction_from_row
from remit.ledger.service import LedgerService
from remit.ledger.tables import ledger_transactions
from tests.integration.ledger.conftest import NewAccount

pytestmark = pytest.mark.anyio

KEY = Secret(b"checkpoint-key-for-tests-0123456789")


async def post(engine: AsyncEngine, clock: FixedClock, account_id: str, *txids: str) -> None:
    async with engine.begin() as db:
        for txid in txids:
            legs = (Posting("world", -100, "usd"), Posting("wallet", 100, "usd"))
            await journal.post(db, account_id, TransactionRequest(txid, legs), now=clock.now())


async def rewrite_history(engine: AsyncEngine, account_id: str, txid: str) -> None:
    """What a superuser can do: change a transaction (a key added to its metadata here, which
    nothing else the ledger stores contradicts), then recompute the hash of it and of every
    transaction after it, and the chain head, past the triggers."""
    t = ledger_transactions.c
    async with engine.begin() as db:
        await db.execute(text("SET LOCAL session_replication_role = replica"))
        await db.execute(
            text(
                "UPDATE ledger_transactions "
                'SET metadata = metadata || \'{"paid_to": "elsewhere"}\' '
                "WHERE account_id = :a AND id = :id"
            ),
            {"a": account_id, "id": txid},
        )
        rows = (
            await db.execute(
                select(ledger_transactions).where(t.account_id == account_id).order_by(t.sequence)
            )
        ).all()
        postings = await JournalRepository(db).postings_of(account_id, [row.id for row in rows])
        previous = ""
        for row in rows:
            transaction = transaction_from_row(row, postings[row.id])
            recomputed = chain_hash(previous, replace(transaction, previous_hash=previous))
            await db.execute(
                text(
                    "UPDATE ledger_transactions SET hash = :h, previous_hash = :p "
                    "WHERE account_id = :a AND id = :id"
                ),
                {"h": recomputed, "p": previous, "a": account_id, "id": row.id},
            )
            previous = recomputed
        await db.execute(
            text("UPDATE ledger_chains SET last_hash = :h WHERE account_id = :a"),
            {"h": previous, "a": account_id},
        )


async def test_a_rewritten_history_passes_the_chain_but_not_the_checkpoints(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock, tmp_path: Path
) -> None:
    service = LedgerService(core_engine, clock)
    path = tmp_path / "checkpoints"
    other = await new_account()
    mine = await new_account()
    await post(core_engine, clock, other, "o1")
    await post(core_engine, clock, mine, "t1", "t2")
    assert await service.checkpoint(path, KEY) == 2  # lines 1 and 2: other at 1, mine at 2
    await post(core_engine, clock, mine, "t3")
    assert await service.checkpoint(path, KEY, account_id=mine) == 1  # line 3: mine at 3
    mine_at_2 = next(
        entry.number
        for entry in read_file(path, KEY)
        if isinstance(entry, CheckpointLine) and entry.checkpoint.account_id == mine
    )
    anchors = CheckpointFile(path, KEY)
    before = await service.verify(checkpoints=anchors)
    assert before.ok
    assert before.checkpoints is not None
    assert before.checkpoints.checked == 3

    await rewrite_history(core_engine, mine, "t2")

    alone = await service.verify()
    assert alone.ok, (alone.differences, alone.chain_breaks)  # the chain alone passes
    report = await service.verify(checkpoints=anchors)
    assert not report.ok
    found = report.checkpoints
    assert found is not None
    assert (found.checked, found.disagreeing, found.unreadable) == (3, 2, 0)
    first = found.disagreements[0]
    assert (first.line.number, first.line.checkpoint.account_id) == (mine_at_2, mine)
    assert first.line.checkpoint.sequence == 2
    assert "the chain's hash there is" in first.found
    # The account's own check finds it too; the other account's checkpoint still holds.
    assert not (await service.verify(mine, checkpoints=anchors)).ok
    assert (await service.verify(other, checkpoints=anchors)).ok


async def test_a_leg_repointed_to_another_merchants_ledger_account_fails_verify(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock, tmp_path: Path
) -> None:
    """The hash covers a posting's ledger account's name and currency, not its owner: a leg
    moved from one merchant's wallet/usd to another's, both stored balances shifted to match,
    balances every per-transaction sum. Verify reads postings through their own merchant's
    ledger accounts only, and names the foreign one."""
    service = LedgerService(core_engine, clock)
    path = tmp_path / "checkpoints"
    victim = await new_account()
    thief = await new_account()
    await post(core_engine, clock, victim, "v1", "v2")
    await post(core_engine, clock, thief, "t1")
    assert await service.checkpoint(path, KEY) == 2
    async with core_engine.begin() as db:
        await db.execute(text("SET LOCAL session_replication_role = replica"))
        wallets = await db.execute(
            text(
                "SELECT account_id, id FROM ledger_accounts "
                "WHERE name = 'wallet' AND account_id IN (:v, :t)"
            ),
            {"v": victim, "t": thief},
        )
        ids: dict[str, str] = {row.account_id: row.id for row in wallets}
        await db.execute(
            text(
                "UPDATE ledger_postings SET ledger_account_id = :to "
                "WHERE account_id = :v AND transaction_id = 'v2' AND ledger_account_id = :frm"
            ),
            {"to": ids[thief], "frm": ids[victim], "v": victim},
        )
        for owner, change in ((victim, -100), (thief, 100)):
            await db.execute(
                text(
                    "UPDATE ledger_accounts SET posted_balance_minor = posted_balance_minor + :c "
                    "WHERE id = :id"
                ),
                {"c": change, "id": ids[owner]},
            )

    report = await service.verify(checkpoints=CheckpointFile(path, KEY))
    assert not report.ok
    assert [(b.account_id, b.transaction_id) for b in report.chain_breaks] == [(victim, "v2")]
    foreign = [
        d
        for d in report.differences
        if d.kind is verify_module.DifferenceKind.FOREIGN_LEDGER_ACCOUNT
    ]
    assert [
        (d.account_id, d.transaction_id, d.ledger_account, d.actual_minor) for d in foreign
    ] == [(victim, "v2", "wallet", 100)]
    assert thief in foreign[0].description
    # Either merchant's own verify finds it.
    for owner in (victim, thief):
        scoped = await service.verify(owner)
        assert verify_module.DifferenceKind.FOREIGN_LEDGER_ACCOUNT in {
            d.kind for d in scoped.differences
        }
    assert any(
        d.kind is verify_module.DifferenceKind.BALANCE_MISMATCH and d.account_id == thief
        for d in report.differences
    )


async def test_a_deleted_tail_disagrees_with_its_checkpoint(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock, tmp_path: Path
) -> None:
    service = LedgerService(core_engine, clock)
    path = tmp_path / "checkpoints"
    await post(core_engine, clock, account_id, "t1", "t2")
    await service.checkpoint(path, KEY)
    async with core_engine.begin() as db:
        await db.execute(text("SET LOCAL session_replication_role = replica"))
        await db.execute(text("DELETE FROM ledger_postings WHERE transaction_id = 't2'"))
        await db.execute(text("DELETE FROM ledger_transactions WHERE id = 't2'"))
    report = await service.verify(checkpoints=CheckpointFile(path, KEY))
    assert report.checkpoints is not None
    assert report.checkpoints.disagreements[0].found == (
        "the chain has no transaction at that sequence"
    )


async def test_a_tampered_checkpoint_line_fails_its_hmac(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock, tmp_path: Path
) -> None:
    service = LedgerService(core_engine, clock)
    path = tmp_path / "checkpoints"
    await post(core_engine, clock, account_id, "t1", "t2")
    await service.checkpoint(path, KEY)
    # Moved back to sequence 1, as someone covering a rewrite of t2 might.
    path.write_text(path.read_text().replace('"sequence":2', '"sequence":1'))
    report = await service.verify(checkpoints=CheckpointFile(path, KEY))
    assert not report.ok
    assert report.checkpoints is not None
    assert report.checkpoints.unreadable == 1
    assert "HMAC does not match" in report.checkpoints.unreadable_lines[0].reason


async def test_the_workers_checkpoints_cover_only_the_chains_that_moved(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock, tmp_path: Path
) -> None:
    path = tmp_path / "checkpoints"
    task = checkpoint_task(core_engine, clock, path, KEY, 3600.0)
    first = await new_account()
    second = await new_account()
    await post(core_engine, clock, first, "a1")
    await post(core_engine, clock, second, "b1")
    await task.run()
    await task.run()  # nothing moved
    await post(core_engine, clock, second, "b2")
    await task.run()
    written = [
        (entry.checkpoint.account_id, entry.checkpoint.sequence)
        for entry in read_file(path, KEY)
        if isinstance(entry, CheckpointLine)
    ]
    assert sorted(written[:2]) == sorted([(first, 1), (second, 1)])
    assert written[2:] == [(second, 2)]


async def test_after_a_key_change_the_file_checks_whole_given_the_earlier_key(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock, tmp_path: Path
) -> None:
    service = LedgerService(core_engine, clock)
    path = tmp_path / "checkpoints"
    new_key = Secret(b"the-key-after-the-change-0123456789")
    await post(core_engine, clock, account_id, "t1")
    await service.checkpoint(path, KEY)
    await post(core_engine, clock, account_id, "t2")
    await service.checkpoint(path, new_key)

    retired = RetiredKey(KEY, clock.now())
    both = await service.verify(
        checkpoints=CheckpointFile(path, CheckpointKeys(new_key, (retired,)))
    )
    assert both.ok
    assert both.checkpoints is not None
    assert both.checkpoints.checked == 2
    assert both.checkpoints.checked_under_retired == {key_id(KEY): 1}

    # Without the earlier key its line is not checked, and says so: not a failed HMAC.
    alone = await service.verify(checkpoints=CheckpointFile(path, new_key))
    assert not alone.ok
    found = alone.checkpoints
    assert found is not None
    assert (found.checked, found.unreadable, found.unknown_key) == (1, 0, 1)
    assert found.unknown_keys == {key_id(KEY): 1}
    assert found.unknown_key_lines[0].number == 1


async def test_a_checkpoint_appended_while_verify_runs_is_left_to_the_next(
    core_engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker appends a checkpoint of a posting committed after verify's snapshot began:
    the snapshot cannot hold its position, and verify must not call that tampering."""
    service = LedgerService(core_engine, clock)
    path = tmp_path / "checkpoints"
    await post(core_engine, clock, account_id, "t1")
    await service.checkpoint(path, KEY)
    chain_breaks = verify_module._chain_breaks

    async def meanwhile(
        db: AsyncConnection, account: str | None
    ) -> tuple[int, list[verify_module.ChainBreak]]:
        found = await chain_breaks(db, account)  # the snapshot has begun
        await post(core_engine, clock, account_id, "t2")
        await service.checkpoint(path, KEY)
        return found

    monkeypatch.setattr(verify_module, "_chain_breaks", meanwhile)
    anchors = CheckpointFile(path, KEY)
    during = await service.verify(checkpoints=anchors)
    assert during.checkpoints is not None
    assert during.ok, during.checkpoints.disagreements
    assert during.checkpoints.checked == 1
    monkeypatch.setattr(verify_module, "_chain_breaks", chain_breaks)

    after = await service.verify(checkpoints=anchors)
    assert after.ok
    assert after.checkpoints is not None
    assert after.checkpoints.checked == 2
    # Left for the next verification, not skipped: a deleted tail still shows.
    async with core_engine.begin() as db:
        await db.execute(text("SET LOCAL session_replication_role = replica"))
        await db.execute(text("DELETE FROM ledger_postings WHERE transaction_id = 't2'"))
        await db.execute(text("DELETE FROM ledger_transactions WHERE id = 't2'"))
        await db.execute(
            text(
                "UPDATE ledger_chains SET last_sequence = 1, last_hash = :h WHERE account_id = :a"
            ),
            {"h": after_t1_hash(path), "a": account_id},
        )
    deleted = await service.verify(checkpoints=anchors)
    assert not deleted.ok
    assert not deleted.chain_breaks  # the chain alone passes: its head was moved back too
    assert deleted.checkpoints is not None
    assert deleted.checkpoints.disagreements[0].found == (
        "the chain has no transaction at that sequence"
    )


def after_t1_hash(path: Path) -> str:
    """The chain's hash at sequence 1, as the file's first checkpoint recorded it."""
    first = next(entry for entry in read_file(path, KEY) if isinstance(entry, CheckpointLine))
    return first.checkpoint.hash


async def test_a_line_an_interrupted_append_cut_short_is_reported_but_passes(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock, tmp_path: Path
) -> None:
    service = LedgerService(core_engine, clock)
    path = tmp_path / "checkpoints"
    await post(core_engine, clock, account_id, "t1")
    await service.checkpoint(path, KEY)
    with path.open("a") as file:
        file.write('{"account_id":"')
    report = await service.verify(checkpoints=CheckpointFile(path, KEY))
    assert report.ok
    assert report.checkpoints is not None
    assert (report.checkpoints.checked, report.checkpoints.incomplete) == (1, 1)
    assert report.checkpoints.incomplete_lines[0].number == 2


async def test_no_checkpoint_to_check_is_a_failure(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock, tmp_path: Path
) -> None:
    """Whoever can empty the file must not get a pass for it."""
    service = LedgerService(core_engine, clock)
    path = tmp_path / "checkpoints"
    path.touch()
    anchored = await new_account()
    other = await new_account()
    await post(core_engine, clock, anchored, "t1")
    await post(core_engine, clock, other, "o1")
    empty = await service.verify(checkpoints=CheckpointFile(path, KEY))
    assert empty.checkpoints is not None
    assert (empty.ok, empty.checkpoints.checked) == (False, 0)
    await service.checkpoint(path, KEY, account_id=anchored)
    assert (await service.verify(anchored, checkpoints=CheckpointFile(path, KEY))).ok
    # None of this account's lines are there: as good as none at all.
    assert not (await service.verify(other, checkpoints=CheckpointFile(path, KEY))).ok


async def test_a_transaction_no_checkpoint_covers_long_after_is_warned_of(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock, tmp_path: Path
) -> None:
    service = LedgerService(core_engine, clock)
    path = tmp_path / "checkpoints"
    anchors = CheckpointFile(path, KEY, interval_s=3600.0)
    await post(core_engine, clock, account_id, "t1")
    await service.checkpoint(path, KEY)
    clock.advance(10 * 3600)
    # A quiet ledger: the newest checkpoint is old, but there was nothing more to write.
    quiet = await service.verify(account_id, checkpoints=anchors)
    assert quiet.checkpoints is not None
    assert quiet.checkpoints.unanchored_since is None
    await post(core_engine, clock, account_id, "t2")
    posted_at = clock.now()
    clock.advance(3600)
    soon = await service.verify(account_id, checkpoints=anchors)
    assert soon.checkpoints is not None
    assert soon.checkpoints.unanchored_since is None  # the worker's next run is not yet late
    clock.advance(2 * 3600)
    late = await service.verify(account_id, checkpoints=anchors)
    assert late.ok  # a warning, no failure
    assert late.checkpoints is not None
    assert late.checkpoints.unanchored_since == posted_at


async def test_a_quiet_accounts_cut_checkpoint_is_not_hidden_by_a_busy_accounts(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock, tmp_path: Path
) -> None:
    """The warning compares each account's transactions with that account's checkpoints: a
    busy account's newer lines do not cover a quiet account whose last line was cut."""
    service = LedgerService(core_engine, clock)
    path = tmp_path / "checkpoints"
    anchors = CheckpointFile(path, KEY, interval_s=3600.0)
    quiet, busy = await new_account(), await new_account()
    await post(core_engine, clock, quiet, "q1")
    await post(core_engine, clock, busy, "b1")
    await service.checkpoint(path, KEY)
    clock.advance(60)
    await post(core_engine, clock, quiet, "q2")
    posted_at = clock.now()
    await service.checkpoint(path, KEY)
    lines = path.read_text().splitlines(keepends=True)
    last_quiet = max(i for i, line in enumerate(lines) if json.loads(line)["account_id"] == quiet)
    path.write_text("".join(lines[:last_quiet] + lines[last_quiet + 1 :]))  # cut at a line's end
    clock.advance(3 * 3600)
    await post(core_engine, clock, busy, "b2")
    await service.checkpoint(path, KEY, account_id=busy)  # as the worker would: what moved
    report = await service.verify(checkpoints=anchors)
    assert report.checkpoints is not None
    assert report.checkpoints.unanchored_since == posted_at
    assert report.checkpoints.unanchored_accounts == 1
    assert report.checkpoints.unanchored_shown == [(quiet, posted_at)]
    assert report.ok  # a warning, no failure
