"""`remit ledger verify`: each balance transaction against the ledger transaction it names,
the ledger accounts' guards against the chart, and each charge against its refunds.

A balance transaction is what Stripe shows of a posting: Stripe's view check (`verify`) only
sums `net` per account, currency and status, so a row whose amount and fee moved together,
whose type or source changed, or two rows whose statuses were swapped, passed it. Here every
row is held to its posting (`postings.py`, `payouts.py` write them):

- its ledger transaction exists, and its id is the row's source followed by a step its type
  has: charge `ch:capture`; refund `re:refund_hold` or `re:refund`; refund_failure
  `re:refund_release` or `re:refund_failure`; payout `po:payout`; payout_cancel `po:cancel`;
  payout_failure `po:failure`; adjustment (a dispute's withdrawal or a won dispute's
  reinstatement) `dp:dispute` or `dp:dispute_reversal`, or `dp:re:dispute` for the withdrawal
  of what a refund of the charge gave back by failing after the dispute opened (the id is
  hashed, and derived from the source);
- its reporting category is its step's: its type's (`objects.REPORTING_CATEGORY`), but for a
  dispute's adjustments, reported as the dispute (`dispute`) or its reversal
  (`dispute_reversal`), so that a reinstatement relabelled a withdrawal is a finding;
- its net and fee are what the posting moved in the row's currency, and its amount their sum:
  a charge's net is what its capture, with its fee transaction `ch:fee`, put into pending and
  its fee what they put into fees; any other row's net is the posting's available leg and its
  fee its fees leg (the legs a refund release lets go of, negated: a void records the legs it
  releases);
- its `fee_details` add up to its fee, each in the row's currency (a charge's fee raised with
  its details left alone, or a detail moved to another currency, is a finding);
- a payout it is listed under (`payout_id`) exists and pays out the row's currency. An
  automatic payout's rows are not held to sum to its amount: they need not (a manual payout may
  have drawn on a row it keeps, and one in whole units leaves a part of a row available,
  `payout_contents`);
- its charge is the one the ledger transaction names (for a refund_failure, the one the hold or
  refund it undoes names), and a payout's row names none;
- a charge's row is available exactly when `txn_..:available` moved its net to available (or
  its net is 0); every other row is available at once.

`non_negative` is set from `chart.NON_NEGATIVE` when the ledger creates an account, and nothing
changes it: a chart account whose guard was lifted would let the ledger overdraw it.

A charge's refunds, net of their failures, never exceed its amount: each refund checks what is
left of the charge under the account's posting lock (`postings.record_refund_held`).

Each check is one set-based query; the per-row one is streamed.
"""

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.ledger.chart import AVAILABLE, FEES, NON_NEGATIVE, PENDING
from remit.ledger.objects import (
    DISPUTE_REPORTING_CATEGORY,
    DISPUTE_REVERSAL_REPORTING_CATEGORY,
    REPORTING_CATEGORY,
    BalanceTransactionStatus,
    BalanceTransactionType,
)
from remit.ledger.verify_differences import Difference, DifferenceKind

_T = BalanceTransactionType
# The steps of the ledger transactions each type of balance transaction describes.
STEPS: Final[Mapping[str, tuple[str, ...]]] = {
    _T.CHARGE.value: ("capture",),
    _T.REFUND.value: ("refund_hold", "refund"),
    _T.REFUND_FAILURE.value: ("refund_release", "refund_failure"),
    _T.PAYOUT.value: ("payout",),
    _T.PAYOUT_CANCEL.value: ("cancel",),
    _T.PAYOUT_FAILURE.value: ("failure",),
    # The ledger's only adjustments: a dispute's withdrawal, and its reinstatement once won.
    _T.ADJUSTMENT.value: ("dispute", "dispute_reversal"),
}
# The reporting category of each step's balance transaction (no step is two types'): its
# type's, but for a dispute's adjustments, which Stripe reports as the dispute they move.
_CATEGORY_OF_STEP: Final[Mapping[str, str]] = {
    **{step: REPORTING_CATEGORY[_T(type_)] for type_, steps in STEPS.items() for step in steps},
    "dispute": DISPUTE_REPORTING_CATEGORY,
    "dispute_reversal": DISPUTE_REVERSAL_REPORTING_CATEGORY,
}
_CHARGE_ROWS: Final = (_T.CHARGE.value, _T.REFUND.value, _T.REFUND_FAILURE.value)
# The steps whose ledger id may name a refund between the source and the step: a dispute's
# withdrawal of a refund that failed after it opened (`postings.dispute_withdrawal_id_for`).
_REFUND_NAMED_STEPS: Final = frozenset({"dispute"})

# Suffixes are bound, not written: text() would read ":capture" in a literal as a parameter.
_ROWS = """
WITH legs AS (
    SELECT lp.account_id, lp.transaction_id, la.currency,
        sum(lp.amount_minor) FILTER (WHERE la.name = :pending) AS pending,
        sum(lp.amount_minor) FILTER (WHERE la.name = :available) AS available,
        sum(lp.amount_minor) FILTER (WHERE la.name = :fees) AS fees
    FROM ledger_postings AS lp
    JOIN ledger_accounts AS la ON la.id = lp.ledger_account_id
    WHERE la.name IN (:pending, :available, :fees) {legs_scope}
    GROUP BY lp.account_id, lp.transaction_id, la.currency
)
SELECT bt.account_id, bt.id, bt.ledger_transaction_id, bt.type, bt.amount, bt.fee, bt.net,
    bt.currency, bt.status, bt.source_id, bt.charge_id, bt.reporting_category,
    bt.fee_details, bt.payout_id, po.id AS payout_found, po.currency AS payout_currency,
    t.kind, t.metadata ->> 'charge' AS named_charge,
    origin.metadata ->> 'charge' AS origin_charge,
    own.pending AS own_pending, own.available AS own_available, own.fees AS own_fees,
    fee.pending AS fee_pending, fee.fees AS fee_fees,
    made.id AS made_available, moved.available AS moved_available
FROM balance_transactions AS bt
LEFT JOIN ledger_transactions AS t
    ON t.account_id = bt.account_id AND t.id = bt.ledger_transaction_id
LEFT JOIN payouts AS po ON po.account_id = bt.account_id AND po.id = bt.payout_id
LEFT JOIN ledger_transactions AS origin
    ON origin.account_id = t.account_id
    AND origin.id = coalesce(t.pending_transaction_id, t.metadata ->> 'reverses')
LEFT JOIN legs AS own
    ON own.account_id = bt.account_id AND own.transaction_id = bt.ledger_transaction_id
    AND own.currency = bt.currency
LEFT JOIN legs AS fee
    ON bt.type = :charge AND fee.account_id = bt.account_id AND fee.currency = bt.currency
    AND fee.transaction_id = regexp_replace(bt.ledger_transaction_id, :capture_end, :fee_step)
LEFT JOIN ledger_transactions AS made
    ON bt.type = :charge AND made.account_id = bt.account_id
    AND made.id = bt.id || :available_step
LEFT JOIN legs AS moved
    ON bt.type = :charge AND moved.account_id = bt.account_id
    AND moved.transaction_id = bt.id || :available_step AND moved.currency = bt.currency
{rows_scope}
"""

_FLAGS = """
SELECT account_id, name, currency, non_negative
FROM ledger_accounts
WHERE non_negative IS DISTINCT FROM (name = ANY(CAST(:guarded AS text[]))) {scope}
ORDER BY account_id, name, currency
"""

_OVER_REFUNDED = """
SELECT account_id, charge_id, currency,
    coalesce(sum(amount) FILTER (WHERE type = :charge), 0) AS charged,
    -coalesce(sum(amount) FILTER (WHERE type <> :charge), 0) AS refunded
FROM balance_transactions
WHERE charge_id IS NOT NULL AND type = ANY(CAST(:types AS text[])) {scope}
GROUP BY account_id, charge_id, currency
HAVING -coalesce(sum(amount) FILTER (WHERE type <> :charge), 0)
    > coalesce(sum(amount) FILTER (WHERE type = :charge), 0)
ORDER BY account_id, charge_id
"""


def _scope(alias: str, account_id: str | None) -> str:
    return f"AND {alias}.account_id = :account_id" if account_id is not None else ""


def _mismatch(row: Row[tuple[object, ...]], expected: int, actual: int, why: str) -> Difference:
    return Difference(
        kind=DifferenceKind.BALANCE_TRANSACTION_MISMATCH,
        account_id=str(row.account_id),
        currency=str(row.currency),
        expected_minor=expected,
        actual_minor=actual,
        description=f"{row.id} ({row.type} of {row.source_id}, {row.ledger_transaction_id}): "
        + why,
        transaction_id=str(row.ledger_transaction_id),
    )


def _int(value: object) -> int:
    """A column as an integer: 0 for NULL (no such leg), and sums of bigints come back as
    numeric."""
    if value is None:
        return 0
    assert isinstance(value, (int, Decimal))
    return int(value)


def _article(word: str) -> str:
    """The indefinite article before `word` (a type's name: "an adjustment", "a charge")."""
    return "an" if word[:1] in ("a", "e", "i", "o", "u") else "a"


def _moved(row: Row[tuple[object, ...]]) -> tuple[int, int]:
    """(net, fee) of what the row's ledger transaction moved, as its balance transaction shows
    it."""
    if row.type == _T.CHARGE.value:
        return (
            _int(row.own_pending) + _int(row.fee_pending),
            _int(row.own_fees) + _int(row.fee_fees),
        )
    sign = -1 if row.kind == "void_pending" else 1
    return sign * _int(row.own_available), sign * _int(row.own_fees)


def _expected_charge(row: Row[tuple[object, ...]]) -> object:
    if row.type in (_T.CHARGE.value, _T.REFUND.value, _T.ADJUSTMENT.value):
        return row.named_charge
    if row.type == _T.REFUND_FAILURE.value:
        return row.origin_charge
    return None


def _names_step_of_source(transaction_id: str, source_id: str, steps: tuple[str, ...]) -> bool:
    """Whether the ledger id is the source's followed by one of `steps`, or by a refund and a
    step that may name one (`_REFUND_NAMED_STEPS`)."""
    if transaction_id in {f"{source_id}:{step}" for step in steps}:
        return True
    head, _, step = transaction_id.rpartition(":")
    between = head.removeprefix(f"{source_id}:")
    return (
        step in steps
        and step in _REFUND_NAMED_STEPS
        and between != head
        and re.fullmatch(r"re_[^:]+", between) is not None
    )


def _step_problems(row: Row[tuple[object, ...]], steps: tuple[str, ...]) -> list[Difference]:
    """What is wrong with the row's ledger transaction as a step of its type, of its source, and
    with its reporting category as that step's."""
    found: list[Difference] = []
    if not _names_step_of_source(str(row.ledger_transaction_id), str(row.source_id), steps):
        article = _article(str(row.type))
        found.append(
            _mismatch(
                row, 0, 0, f"{article} {row.type} of {row.source_id} is not this ledger transaction"
            )
        )
    # The step as the ledger transaction's id ends, whatever source it names (a wrong source is
    # the finding above): the category is held to it when the row's type has that step.
    step = str(row.ledger_transaction_id).rpartition(":")[2]
    expected = _CATEGORY_OF_STEP[step] if step in steps else None
    if expected is not None and row.reporting_category != expected:
        found.append(
            _mismatch(
                row, 0, 0, f"reporting category {row.reporting_category}, the ledger {expected}"
            )
        )
    return found


def _row_problems(row: Row[tuple[object, ...]]) -> list[Difference]:
    found: list[Difference] = []
    steps = STEPS.get(str(row.type))
    if steps is None:
        return [_mismatch(row, 0, 0, f"type {row.type} is not one the ledger writes")]
    found += _step_problems(row, steps)
    if row.kind is None:
        return [*found, _mismatch(row, 0, 0, "its ledger transaction does not exist")]
    net, fee = _moved(row)
    for what, expected, actual in (
        ("net", net, _int(row.net)),
        ("fee", fee, _int(row.fee)),
        ("amount", net + fee, _int(row.amount)),
    ):
        if expected != actual:
            found.append(
                _mismatch(row, expected, actual, f"{what} {actual}, the ledger moved {expected}")
            )
    if _int(row.net) != _int(row.amount) - _int(row.fee):
        found.append(
            _mismatch(
                row, _int(row.amount) - _int(row.fee), _int(row.net), "net is not amount less fee"
            )
        )
    found += _fee_detail_problems(row)
    found += _payout_problems(row)
    if row.charge_id != _expected_charge(row):
        found.append(
            _mismatch(
                row, 0, 0, f"names charge {row.charge_id}, the ledger {_expected_charge(row)}"
            )
        )
    found += _status_problems(row)
    return found


def _fee_detail_problems(row: Row[tuple[object, ...]]) -> list[Difference]:
    """The row's `fee_details` against its fee and currency: what Stripe shows as the fee's
    breakdown must be the fee, in the row's currency."""
    details = row.fee_details
    if not isinstance(details, list) or not all(
        isinstance(detail, dict)
        and type(detail.get("amount")) is int
        and isinstance(detail.get("currency"), str)
        for detail in details
    ):
        return [_mismatch(row, 0, 0, "fee_details is not a list of amounts in a currency")]
    found: list[Difference] = []
    total = sum(int(detail["amount"]) for detail in details)
    if total != _int(row.fee):
        found.append(
            _mismatch(row, _int(row.fee), total, f"fee_details add up to {total}, not its fee")
        )
    for detail in details:
        if detail["currency"] != row.currency:
            found.append(
                _mismatch(
                    row,
                    0,
                    0,
                    f"a fee detail of {detail['amount']} is in {detail['currency']}, not the "
                    f"row's {row.currency}",
                )
            )
    return found


def _payout_problems(row: Row[tuple[object, ...]]) -> list[Difference]:
    """The payout the row is listed under, if any: one of the account's, in the row's
    currency."""
    if row.payout_id is None:
        return []
    if row.payout_found is None:
        return [_mismatch(row, 0, 0, f"listed under payout {row.payout_id}, which does not exist")]
    if row.payout_currency != row.currency:
        return [
            _mismatch(
                row,
                0,
                0,
                f"listed under payout {row.payout_id}, which pays out {row.payout_currency}",
            )
        ]
    return []


def _status_problems(row: Row[tuple[object, ...]]) -> list[Difference]:
    available = row.status == BalanceTransactionStatus.AVAILABLE.value
    if row.type != _T.CHARGE.value:
        return [] if available else [_mismatch(row, 0, 0, f"{row.status}, not available")]
    net = _int(row.net)
    if row.made_available is None:
        if available and net:
            return [_mismatch(row, net, 0, "available, but no posting made its net available")]
        return []
    if not available:
        return [_mismatch(row, 0, net, f"{row.status}, but {row.made_available} made it available")]
    if _int(row.moved_available) != net:
        return [
            _mismatch(
                row,
                net,
                _int(row.moved_available),
                f"{row.made_available} made {_int(row.moved_available)} available, not its net",
            )
        ]
    return []


async def balance_transaction_mismatches(
    db: AsyncConnection, account_id: str | None
) -> list[Difference]:
    query = _ROWS.format(
        legs_scope=_scope("lp", account_id),
        rows_scope="WHERE bt.account_id = :account_id" if account_id is not None else "",
    )
    params = {
        "account_id": account_id,
        "pending": PENDING,
        "available": AVAILABLE,
        "fees": FEES,
        "charge": _T.CHARGE.value,
        "capture_end": ":capture$",
        "fee_step": ":fee",
        "available_step": ":available",
    }
    result = await db.stream(text(query).execution_options(yield_per=5000), params)
    found: list[Difference] = []
    async for row in result:
        found += _row_problems(row)
    return found


async def account_flag_mismatches(db: AsyncConnection, account_id: str | None) -> list[Difference]:
    guarded = [name for name, flagged in NON_NEGATIVE.items() if flagged]
    params = {"account_id": account_id, "guarded": guarded}
    return [
        Difference(
            kind=DifferenceKind.ACCOUNT_FLAG_MISMATCH,
            account_id=row.account_id,
            currency=row.currency,
            expected_minor=0,
            actual_minor=0,
            description=f"{row.name} {row.currency}: non_negative is {row.non_negative}, the "
            f"chart says {not row.non_negative}",
            ledger_account=row.name,
        )
        for row in await db.execute(
            text(_FLAGS.format(scope=_scope("ledger_accounts", account_id))), params
        )
    ]


async def over_refunded_charges(db: AsyncConnection, account_id: str | None) -> list[Difference]:
    params = {"account_id": account_id, "charge": _T.CHARGE.value, "types": list(_CHARGE_ROWS)}
    query = _OVER_REFUNDED.format(scope=_scope("balance_transactions", account_id))
    return [
        Difference(
            kind=DifferenceKind.REFUNDS_EXCEED_CHARGE,
            account_id=row.account_id,
            currency=row.currency,
            expected_minor=int(row.charged),
            actual_minor=int(row.refunded),
            description=f"charge {row.charge_id}: refunds net of failures {row.refunded}, more "
            f"than its amount {row.charged}",
        )
        for row in await db.execute(text(query), params)
    ]
