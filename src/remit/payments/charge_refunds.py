"""The refunds a charge read shows: read only when the answer will show them (a client that
expands `refunds`), and then only their first page, as Stripe embeds them."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.payments.charges import Refund
from remit.payments.repository import Budget, RefundRepository
from remit.versioning import MAX_EMBEDDED

REFUNDS_PAGE: Final = MAX_EMBEDDED
"""At most this many refunds are shown in a charge; `has_more` says when there are more."""


@dataclass(frozen=True)
class ChargeRefunds:
    """A charge's first refunds, newest first, and whether more follow (listed at
    /v1/charges/{id}/refunds). Empty when the read did not ask for them."""

    first: list[Refund] = field(default_factory=list)
    has_more: bool = False
    left_out: bool = False
    """Not read: the refunds of the charges before it in the page filled the answer's budget
    (`read_refunds_of_charges`). The caller lists them on their own (ListRefundsOfCharges)."""


NOT_READ: Final = ChargeRefunds()
LEFT_OUT: Final = ChargeRefunds(left_out=True)


async def read_refunds(
    db: AsyncConnection, account_id: str, charge_id: str, *, wanted: bool
) -> ChargeRefunds:
    if not wanted:
        return NOT_READ
    first, has_more = await RefundRepository(db).page(
        account_id, limit=REFUNDS_PAGE, charge_id=charge_id
    )
    return ChargeRefunds(first, has_more)


async def read_refunds_of_charges(
    db: AsyncConnection,
    account_id: str,
    charge_ids: Sequence[str],
    *,
    wanted: bool,
    budget_bytes: int | None = None,
) -> dict[str, ChargeRefunds]:
    """`read_refunds` of each of `charge_ids` (a page of charges), in one query: of as many of
    them, in order, as `budget_bytes` holds (all without one; maybe none, as the page of
    charges takes its own part of the answer besides), the others `left_out`."""
    if not wanted:
        return {charge_id: NOT_READ for charge_id in charge_ids}
    budget = None if budget_bytes is None else Budget(budget_bytes, first_whole=False)
    pages, left_out = await RefundRepository(db).first_of_charges(
        account_id, charge_ids, limit=REFUNDS_PAGE, budget=budget
    )
    read = {charge_id: ChargeRefunds(first, more) for charge_id, (first, more) in pages.items()}
    read.update((charge_id, LEFT_OUT) for charge_id in left_out)
    return read
