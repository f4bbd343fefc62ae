"""`remit reconcile --date D`: one settlement day of the acquirer against the ledger.

The acquirer side is its settlement report for the UTC day D. Items pair up on (kind,
reference): the reference the capture or refund was sent to the acquirer with, stored on the
balance transaction. A pair is compared on what the core's look-ups at the acquirer compare
(`remit.payments.lookup_expectations`): amount, currency, merchant and, when the ledger knows
it, the authorization (a refund's is its charge's). A pair that differs in any of them is an
amount mismatch; one that agrees is matched, unless the fee the acquirer withheld differs from
the network fee the ledger booked (a fee mismatch). An item on one side only is missing on the
other. Each row that is not matched says what differs, as each side holds it (`Difference`).
The result is stored.

A capture is also compared on what it released of its authorization back to the cardholder:
the uncaptured remainder of a partial capture, which the ledger released from the
authorization's reservation and the acquirer records with the capture
(`remit.ledger.released_remainders`). A capture that released another amount at the acquirer
than in the ledger (the held amounts differ, or one side kept the remainder held) is an amount
mismatch. A row of an acquirer that does not say what it released is not compared on it.

The ledger books no network fee on refunds (the acquirer returns none), so a refund's fee is 0
on the ledger's side. A capture booked before the ledger recorded network fees has no fee on
its side (`remit.ledger.network_fees`): its fee is not compared.

The ledger side is what the ledger recorded for the movements the acquirer settled that day,
whenever it recorded them: the ledger records a capture or refund only once the core has the
acquirer's answer, which for one settled at 23:59:59 may come after midnight, and for one whose
answer was lost, only when a retry or the completer looks it up, hours later. So the ledger
side is every charge and refund balance transaction recorded on D, plus those recorded on
another day under a reference of D's report, less those recorded on D for a movement the
acquirer settled on another day (that day's reconciliation pairs them; the acquirer is asked,
by reference, for each item of D its report does not list). A movement is therefore
reconciled once, on its settlement day, and one the acquirer never settled is missing at the
acquirer on the day the ledger recorded it, with what the acquirer answered (not found,
refused and why). A day reconciled before the ledger recorded one of its late movements shows
it missing in the ledger; running it again pairs it.

A refund's balance transaction is recorded when the refund is created, but takes part only
once the acquirer made the refund (it then has a reference): one still waiting for its answer
has nothing to settle yet. A refund can end failed, its money given back to the balance by a
refund_failure balance transaction: refused by the acquirer while pending (the ledger releases
its hold, "re:refund_release") or failed after it posted ("re:refund_failure", the reversal).
The ledger's side keeps such a refund, marked failed, under the reference the core sent it
with (its own id when it never got one). The acquirer settling it is an outcome mismatch: the
ledger gave the money back, the acquirer paid it out. Not settling it is what the ledger
booked: neither side moved the money, and the refund is left out. The other way round, a
refund the ledger booked as made that the acquirer refused or never saw is missing at the
acquirer.

Only a day that is over (UTC) is reconciled as a whole: a day not yet begun has nothing to
compare, and today's report lacks what settles later today, while the ledger already holds
movements the acquirer answered but lists later (the core records a capture once it has the
answer), so a run would show in-flight items as missing. Today runs only when the caller asks
for a partial result, and its result says it is partial.

Every run is stored, and a new run of a day supersedes the earlier ones of the same day and
account scope (each of them records which run replaced it), rather than deleting them: what an
earlier run found, a capture missing in the ledger that a later run pairs, stays as evidence
of when it was found. The run no later run superseded is the day's result.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Any, Final

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.errors import not_found
from remit.core.ids import new_id
from remit.ledger.balance_repository import BalanceRepository
from remit.ledger.network_fees import booked_network_fees
from remit.ledger.objects import BalanceTransaction, BalanceTransactionType
from remit.ledger.released_remainders import released_by_capture, reserved_amounts
from remit.ledger.tables import reconciliation_rows, reconciliations


class RowStatus(Enum):
    MATCHED = "matched"
    MISSING_IN_LEDGER = "missing_in_ledger"
    MISSING_AT_ACQUIRER = "missing_at_acquirer"
    # The two sides hold another movement under the reference: another amount, currency,
    # merchant, authorization or released remainder (the row's differences say which). The
    # name predates the other fields; it stays, as stored runs and the API carry it.
    AMOUNT_MISMATCH = "amount_mismatch"
    # Same amount and currency, but the acquirer withheld another fee than the ledger booked.
    FEE_MISMATCH = "fee_mismatch"
    # The acquirer settled a refund the ledger booked as failed: the ledger gave its money
    # back to the balance (a refund_failure), the acquirer paid it out.
    OUTCOME_MISMATCH = "outcome_mismatch"


class RowKind(Enum):
    CAPTURE = "capture"
    REFUND = "refund"


# The network fee the ledger books on a refund: none (the acquirer returns no fee), so a
# refund the acquirer charged a fee on is a mismatch.
NO_REFUND_FEE: Final = 0

# What a difference is in, named as the acquirer's Operation names its fields (as the look-ups'
# `differing_fields` name them), and the fee.
AMOUNT: Final = "amount"
CURRENCY: Final = "currency"
MERCHANT: Final = "merchant_id"
AUTHORIZATION: Final = "authorization_id"
FEE: Final = "fee"
# What a capture released of its authorization uncaptured, as the settlement row names it.
RELEASED: Final = "released"
# What became of the movement: on the ledger's side `succeeded` or `failed`, on the
# acquirer's `settled`, or what it answered when asked by reference (`AcquirerAnswer`).
OUTCOME: Final = "outcome"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
SETTLED: Final = "settled"


@dataclass(frozen=True)
class Difference:
    """One thing the two sides of a row hold otherwise, as each holds it."""

    field: str
    ledger: str
    acquirer: str


@dataclass(frozen=True)
class SettledItem:
    """One side's view of a capture or refund."""

    kind: RowKind
    reference: str
    account_id: str
    amount: int
    currency: str
    authorization_id: str = ""
    ledger_transaction_id: str | None = None
    fee: int | None = None
    # The ledger's side only: a refund the ledger booked as failed, its money given back to
    # the balance by a refund_failure balance transaction (whether it failed before it posted
    # or after).
    failed: bool = False
    # The ledger's side only: what the acquirer answered when asked for the item by reference
    # (the day's report does not list it), in a few words.
    acquirer_said: str | None = None
    # What a capture released of its authorization uncaptured (0 for a refund); None when the
    # side does not say (an acquirer that does not report it).
    released: int | None = None


@dataclass(frozen=True)
class AcquirerAnswer:
    """What the acquirer holds under the reference of a ledger item its report of the day does
    not list (`remit.ledger.settlement_report.answer_for`)."""

    # The UTC day it settled the item on; None when it did not settle it.
    settled_on: date | None
    # What it holds, in a few words, for the finding: "settled on 2026-11-03", "not found",
    # "refused (charge_already_refunded)".
    said: str


@dataclass(frozen=True)
class ReconciliationRow:
    status: RowStatus
    kind: RowKind
    reference: str
    authorization_id: str
    account_id: str
    currency: str
    ledger_amount: int | None
    acquirer_amount: int | None
    ledger_transaction_id: str | None
    acquirer_fee: int | None
    # The network fee the ledger booked; None when missing there, or booked without one.
    ledger_fee: int | None = None
    # What the two sides hold otherwise; empty for a matched row and a row missing in the
    # ledger. A row missing at the acquirer says what it answered when asked by reference.
    differences: tuple[Difference, ...] = ()


@dataclass(frozen=True)
class Reconciliation:
    id: str
    date: str
    account_id: str | None
    # When the run finished and was stored.
    created_at: datetime
    rows: tuple[ReconciliationRow, ...]
    # The day was not over (UTC) when it ran: only what had settled so far was compared.
    partial: bool = False
    # The later run of the same day and account scope that replaced this one.
    superseded_by: str | None = None
    # When the run began; None for runs stored before remit recorded it (core migration 0038).
    started_at: datetime | None = None

    def count(self, status: RowStatus) -> int:
        return sum(1 for row in self.rows if row.status is status)

    @property
    def ok(self) -> bool:
        return all(row.status is RowStatus.MATCHED for row in self.rows)


def _differences(mine: SettledItem, bank: SettledItem) -> tuple[Difference, ...]:
    """What a pair holds otherwise. The authorization is compared only when the ledger
    recorded it (balance transactions written before it did have none); the fee only when
    the ledger booked one."""
    found: list[Difference] = []

    def differ(field: str, ledger: object, acquirer: object) -> None:
        if ledger != acquirer:
            found.append(Difference(field, str(ledger), str(acquirer)))

    if mine.failed:
        # Every row of the settlement report is a movement the acquirer settled.
        found.append(Difference(OUTCOME, FAILED, SETTLED))
    differ(AMOUNT, mine.amount, bank.amount)
    # The ledger keeps currencies in lower case, as Stripe writes them; a network may not.
    differ(CURRENCY, mine.currency.lower(), bank.currency.lower())
    differ(MERCHANT, mine.account_id, bank.account_id)
    if mine.authorization_id:
        differ(AUTHORIZATION, mine.authorization_id, bank.authorization_id)
    if mine.released is not None and bank.released is not None:
        differ(RELEASED, mine.released, bank.released)
    if mine.fee is not None and bank.fee is not None:
        differ(FEE, mine.fee, bank.fee)
    return tuple(found)


def _outcome(mine: SettledItem) -> str:
    return FAILED if mine.failed else SUCCEEDED


def _status(
    mine: SettledItem | None, bank: SettledItem | None, differences: Sequence[Difference]
) -> RowStatus:
    if mine is None:
        return RowStatus.MISSING_IN_LEDGER
    if bank is None:
        return RowStatus.MISSING_AT_ACQUIRER
    if mine.failed:
        return RowStatus.OUTCOME_MISMATCH
    if any(difference.field != FEE for difference in differences):
        return RowStatus.AMOUNT_MISMATCH
    if differences:
        return RowStatus.FEE_MISMATCH
    return RowStatus.MATCHED


def _row(mine: SettledItem | None, bank: SettledItem | None) -> ReconciliationRow:
    either = mine or bank
    assert either is not None
    differences: tuple[Difference, ...] = ()
    if mine is not None and bank is not None:
        differences = _differences(mine, bank)
    elif mine is not None and mine.acquirer_said is not None:
        differences = (Difference(OUTCOME, _outcome(mine), mine.acquirer_said),)
    return ReconciliationRow(
        status=_status(mine, bank, differences),
        kind=either.kind,
        reference=either.reference,
        authorization_id=(bank.authorization_id if bank else "")
        or (mine.authorization_id if mine else ""),
        account_id=either.account_id,
        currency=either.currency,
        ledger_amount=None if mine is None else mine.amount,
        acquirer_amount=None if bank is None else bank.amount,
        ledger_transaction_id=None if mine is None else mine.ledger_transaction_id,
        acquirer_fee=None if bank is None else bank.fee,
        ledger_fee=None if mine is None else mine.fee,
        differences=differences,
    )


def _pair(
    ours: list[SettledItem], theirs: list[SettledItem]
) -> list[tuple[SettledItem | None, SettledItem | None]]:
    """Pair the items one key has on each side, equal ones first. Normally each side has at
    most one; more is itself a finding (a capture settled twice), and every extra item stays
    a row of its own, missing on the other side."""

    def same(mine: SettledItem, bank: SettledItem) -> bool:
        return not _differences(mine, bank)

    mine_left, bank_left = list(ours), list(theirs)
    pairs: list[tuple[SettledItem | None, SettledItem | None]] = []
    for mine in ours:
        bank = next((b for b in bank_left if same(mine, b)), None)
        if bank is not None:
            pairs.append((mine, bank))
            mine_left.remove(mine)
            bank_left.remove(bank)
    for index in range(max(len(mine_left), len(bank_left))):
        pairs.append(
            (
                mine_left[index] if index < len(mine_left) else None,
                bank_left[index] if index < len(bank_left) else None,
            )
        )
    return pairs


def compare(
    ledger: Sequence[SettledItem], acquirer: Sequence[SettledItem]
) -> list[ReconciliationRow]:
    """Pair the two sides on (kind, reference); pure, so it is tested without I/O.

    Items are grouped by key, never put in a mapping of one item per key: a second settlement
    row under a reference already seen is money the acquirer moved again, and must show."""
    ours: dict[tuple[RowKind, str], list[SettledItem]] = defaultdict(list)
    theirs: dict[tuple[RowKind, str], list[SettledItem]] = defaultdict(list)
    for item in ledger:
        ours[(item.kind, item.reference)].append(item)
    for item in acquirer:
        theirs[(item.kind, item.reference)].append(item)
    rows: list[ReconciliationRow] = []
    for key in sorted(ours.keys() | theirs.keys(), key=lambda k: (k[0].value, k[1])):
        rows.extend(_row(mine, bank) for mine, bank in _pair(ours[key], theirs[key]))
    return rows


def key(item: SettledItem) -> tuple[RowKind, str]:
    return item.kind, item.reference


def _ledger_item(
    txn: BalanceTransaction,
    network_fees: dict[tuple[str, str], int],
    charge_authorizations: dict[tuple[str, str], str],
    given_back: set[tuple[str, str]],
    reserved: dict[tuple[str, str], int],
) -> SettledItem:
    charge = txn.type is BalanceTransactionType.CHARGE
    charge_key = (txn.account_id, txn.charge_id or "")
    # A refund that failed before the acquirer made it has no reference of its own; the core
    # sends a refund under its id.
    refund_id = None if charge else txn.source_id
    return SettledItem(
        kind=RowKind.CAPTURE if charge else RowKind.REFUND,
        reference=txn.acquirer_reference or refund_id or txn.ledger_transaction_id,
        account_id=txn.account_id,
        # The acquirer reports refunds as positive amounts.
        amount=abs(txn.amount),
        currency=txn.currency,
        # A refund's balance transaction names no authorization: it refunds its charge's.
        authorization_id=(txn.authorization_id if charge else charge_authorizations.get(charge_key))
        or "",
        ledger_transaction_id=txn.ledger_transaction_id,
        fee=network_fees.get(charge_key) if charge else NO_REFUND_FEE,
        failed=refund_id is not None and (txn.account_id, refund_id) in given_back,
        released=released_by_capture(charge_key, txn.amount, reserved) if charge else 0,
    )


async def _ledger_items(
    db: AsyncConnection, found: Sequence[BalanceTransaction]
) -> list[SettledItem]:
    """The ledger's items for these balance transactions, with the network fees it booked, what
    each capture released of its authorization, the authorizations of the refunded charges, and
    whether each refund was booked as failed."""
    captures = {
        (txn.account_id, txn.charge_id)
        for txn in found
        if txn.type is BalanceTransactionType.CHARGE and txn.charge_id is not None
    }
    refunded = {
        (txn.account_id, txn.charge_id)
        for txn in found
        if txn.type is BalanceTransactionType.REFUND and txn.charge_id is not None
    }
    refunds = {
        (txn.account_id, txn.source_id)
        for txn in found
        if txn.type is BalanceTransactionType.REFUND and txn.source_id is not None
    }
    repository = BalanceRepository(db)
    network_fees = await booked_network_fees(db, captures)
    reserved = await reserved_amounts(db, captures)
    authorizations = await repository.charge_authorizations(refunded)
    given_back = await repository.refunds_given_back(refunds)
    return [_ledger_item(txn, network_fees, authorizations, given_back, reserved) for txn in found]


async def ledger_items(db: AsyncConnection, day: date, account_id: str | None) -> list[SettledItem]:
    """The captures and refunds the ledger recorded on `day` (UTC)."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    found = await BalanceRepository(db).for_reconciliation(
        start=start, end=start + timedelta(days=1), account_id=account_id
    )
    return await _ledger_items(db, found)


async def recorded_on_other_days(
    db: AsyncConnection,
    recorded: Sequence[SettledItem],
    settled: Sequence[SettledItem],
    account_id: str | None,
) -> list[SettledItem]:
    """The ledger's items, recorded on any other day than `recorded`'s, for the settled items
    that `recorded` has nothing under; and the refunds under them the ledger booked as failed
    before the acquirer made them, which have no reference of their own (on any day)."""
    wanted = {key(item) for item in settled} - {key(item) for item in recorded}
    seen = {(item.account_id, item.ledger_transaction_id) for item in recorded}
    repository = BalanceRepository(db)
    found = await repository.settled_under({ref for _, ref in wanted}, account_id)
    # Asked for by merchant: the acquirer's row names the account the refund was made for.
    unsent = await repository.refunds_without_reference(
        {
            (item.account_id, item.reference)
            for item in settled
            if item.kind is RowKind.REFUND
            and key(item) in wanted
            and account_id in (None, item.account_id)
        }
    )
    items = await _ledger_items(db, [*found, *unsent])
    unsent_ids = {(txn.account_id, txn.ledger_transaction_id) for txn in unsent}
    return [
        item
        for item in items
        if key(item) in wanted
        and (item.account_id, item.ledger_transaction_id) not in seen
        # One still waiting for the acquirer's answer is not booked either way yet: the
        # settled row stays missing in the ledger until the core records the answer.
        and (item.failed or (item.account_id, item.ledger_transaction_id) not in unsent_ids)
    ]


def not_in_report(
    recorded: Sequence[SettledItem], settled: Sequence[SettledItem]
) -> list[SettledItem]:
    """The ledger's items that the day's settlement report lists nothing under."""
    listed = {key(item) for item in settled}
    return [item for item in recorded if key(item) not in listed]


def ledger_side(
    day: date,
    recorded: Sequence[SettledItem],
    recorded_elsewhen: Sequence[SettledItem],
    answers: Sequence[tuple[SettledItem, AcquirerAnswer]],
) -> list[SettledItem]:
    """What the ledger holds for the settlement day: its items of the day, plus those of the
    day's settlements it recorded on another; less, of those the report does not list and the
    acquirer was asked about (`answers`), the ones it settled on another day (that day's run
    pairs them) and the refunds the ledger booked as failed that it did not settle (neither
    side moved their money). The others it did not settle are missing at the acquirer, and
    carry what it answered."""
    left_out: set[tuple[str, str | None]] = set()
    said: dict[tuple[str, str | None], str] = {}
    for item, answer in answers:
        identity = (item.account_id, item.ledger_transaction_id)
        settled_elsewhen = answer.settled_on is not None and answer.settled_on != day
        if settled_elsewhen or (item.failed and answer.settled_on is None):
            left_out.add(identity)
        else:
            said[identity] = answer.said
    return [
        replace(item, acquirer_said=said.get((item.account_id, item.ledger_transaction_id)))
        for item in recorded
        if (item.account_id, item.ledger_transaction_id) not in left_out
    ] + list(recorded_elsewhen)


async def store(
    db: AsyncConnection,
    *,
    day: date,
    account_id: str | None,
    rows: Sequence[ReconciliationRow],
    now: datetime,
    partial: bool = False,
    started_at: datetime | None = None,
) -> Reconciliation:
    """Store a run as the day's result: the earlier runs of the day and scope (the account, or
    every account) are marked superseded by it, in the same transaction."""
    result = Reconciliation(
        id=new_id("recon"),
        date=day.isoformat(),
        account_id=account_id,
        created_at=now,
        rows=tuple(rows),
        partial=partial,
        started_at=started_at,
    )
    scope = _scope(result.date, account_id)
    # Two runs of one day and scope at once take turns here: the second then supersedes the
    # first rather than finding the day without a current result and adding a second one.
    await db.execute(
        text("SELECT pg_advisory_xact_lock(:namespace, hashtext(:scope))"),
        {"namespace": _RUN_LOCK_NAMESPACE, "scope": scope},
    )
    r = reconciliations.c
    await db.execute(
        reconciliations.update()
        .where(
            r.date == result.date,
            func.coalesce(r.account_id, "") == (account_id or ""),
            r.superseded_by.is_(None),
        )
        .values(superseded_by=result.id)
    )
    await db.execute(
        reconciliations.insert().values(
            id=result.id,
            date=result.date,
            account_id=account_id,
            created_at=now,
            started_at=started_at,
            partial=partial,
            matched_count=result.count(RowStatus.MATCHED),
            missing_in_ledger_count=result.count(RowStatus.MISSING_IN_LEDGER),
            missing_at_acquirer_count=result.count(RowStatus.MISSING_AT_ACQUIRER),
            amount_mismatch_count=result.count(RowStatus.AMOUNT_MISMATCH),
            fee_mismatch_count=result.count(RowStatus.FEE_MISMATCH),
            outcome_mismatch_count=result.count(RowStatus.OUTCOME_MISMATCH),
        )
    )
    if rows:
        await db.execute(
            reconciliation_rows.insert(),
            [
                {
                    "reconciliation_id": result.id,
                    "status": row.status.value,
                    "kind": row.kind.value,
                    "reference": row.reference,
                    "authorization_id": row.authorization_id,
                    "account_id": row.account_id,
                    "currency": row.currency,
                    "ledger_amount": row.ledger_amount,
                    "acquirer_amount": row.acquirer_amount,
                    "ledger_transaction_id": row.ledger_transaction_id,
                    "acquirer_fee": row.acquirer_fee,
                    "ledger_fee": row.ledger_fee,
                    "differences": [difference.__dict__ for difference in row.differences],
                }
                for row in rows
            ],
        )
    return result


# pg_advisory_xact_lock(namespace, key): "reco" keeps reconciliation's keys apart from every
# other advisory lock remit takes.
_RUN_LOCK_NAMESPACE = int.from_bytes(b"reco", "big")


def _scope(day: str, account_id: str | None) -> str:
    return f"{day}/{account_id or ''}"


async def load(db: AsyncConnection, reconciliation_id: str) -> Reconciliation:
    head = (
        await db.execute(select(reconciliations).where(reconciliations.c.id == reconciliation_id))
    ).first()
    if head is None:
        raise not_found("reconciliation", reconciliation_id)
    c = reconciliation_rows.c
    rows = await db.execute(
        select(reconciliation_rows).where(c.reconciliation_id == reconciliation_id).order_by(c.id)
    )
    return Reconciliation(
        id=head.id,
        date=head.date,
        account_id=head.account_id,
        created_at=head.created_at,
        started_at=head.started_at,
        partial=head.partial,
        superseded_by=head.superseded_by,
        rows=tuple(row_of_record(row) for row in rows),
    )


def row_of_record(row: Any) -> ReconciliationRow:
    """A stored row (of `reconciliation_rows`) as the run compared it."""
    return ReconciliationRow(
        status=RowStatus(row.status),
        kind=RowKind(row.kind),
        reference=row.reference,
        authorization_id=row.authorization_id,
        account_id=row.account_id,
        currency=row.currency,
        ledger_amount=row.ledger_amount,
        acquirer_amount=row.acquirer_amount,
        ledger_transaction_id=row.ledger_transaction_id,
        acquirer_fee=row.acquirer_fee,
        ledger_fee=row.ledger_fee,
        differences=tuple(Difference(**found) for found in row.differences),
    )


def _cell(amount: int | None) -> str:
    return "-" if amount is None else str(amount)


def describe_differences(differences: Sequence[Difference]) -> str:
    """`field ledger/acquirer`, one after the other: `currency usd/eur, fee 15/16`."""
    return ", ".join(f"{d.field} {d.ledger}/{d.acquirer}" for d in differences)


def render_table(result: Reconciliation) -> str:
    """The result as a fixed-width table for the terminal."""
    header = (
        f"{'status':<20} {'kind':<8} {'reference':<36} {'account':<30} {'cur':<4} "
        f"{'ledger':>12} {'acquirer':>12} {'ledger fee':>10} {'acq. fee':>10} "
        "differs (ledger/acquirer)"
    )
    title = f"reconciliation {result.id} for {result.date}"
    if result.partial:
        title += " (PARTIAL: the day was not over; items in flight show as missing)"
    lines = [title, header, "-" * len(header)]
    for row in result.rows:
        lines.append(
            f"{row.status.value:<20} {row.kind.value:<8} {row.reference[:36]:<36} "
            f"{row.account_id[:30]:<30} {row.currency:<4} "
            f"{_cell(row.ledger_amount):>12} {_cell(row.acquirer_amount):>12} "
            f"{_cell(row.ledger_fee):>10} {_cell(row.acquirer_fee):>10} "
            f"{describe_differences(row.differences)}".rstrip()
        )
    lines.append(
        f"matched {result.count(RowStatus.MATCHED)}, "
        f"missing in ledger {result.count(RowStatus.MISSING_IN_LEDGER)}, "
        f"missing at acquirer {result.count(RowStatus.MISSING_AT_ACQUIRER)}, "
        f"amount mismatches {result.count(RowStatus.AMOUNT_MISMATCH)}, "
        f"fee mismatches {result.count(RowStatus.FEE_MISMATCH)}, "
        f"outcome mismatches {result.count(RowStatus.OUTCOME_MISMATCH)}"
    )
    return "\n".join(lines)
