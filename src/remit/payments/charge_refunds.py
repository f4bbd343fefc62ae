"""The refunds a charge read shows: read only when the answer will show them (a client that
expands `refunds`), and then only their first page, as Stripe embeds them."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.payments.charges import Refund
from remit.payments.repository import RefundRepository
from remit.versioning import MAX_EMBEDDED

REFUNDS_PAGE: Final = MAX_EMBEDDED
"""At most this many refunds are shown in a charge; `has_more` says when there are more."""


@dataclass(frozen=True)
class ChargeRefunds:
    """A charge's first refunds, newest first, and whether more follow (listed at
    /v1/charges/{id}/refunds). Empty when the read did not ask for them."""

    first: list[Refund] = field(default_factory=list)
    has_more: bool = False


NOT_READ: Final = ChargeRefunds()


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
    db: AsyncConnection, account_id: str, charge_ids: Sequence[str], *, wanted: bool
) -> dict[str, ChargeRefunds]:
    """`read_refunds` of each of `charge_ids` (a page of charges), in one query."""
    if not wanted:
        return {charge_id: NOT_READ for charge_id in charge_ids}
    pages = await RefundRepository(db).first_of_charges(account_id, charge_ids, limit=REFUNDS_PAGE)
    return {charge_id: ChargeRefunds(first, more) for charge_id, (first, more) in pages.items()}
