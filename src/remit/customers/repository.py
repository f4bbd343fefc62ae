"""Customer persistence inside the caller's transaction; every query names the account."""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.customers.domain import Customer, TaxExempt
from remit.customers.tables import customers
from remit.storage.keyset import fetch_page


def _values(customer: Customer) -> dict[str, object]:
    return {
        "email": customer.email,
        "name": customer.name,
        "description": customer.description,
        "phone": customer.phone,
        "business_name": customer.business_name,
        "individual_name": customer.individual_name,
        "address": None if customer.address is None else dict(customer.address),
        "shipping": None if customer.shipping is None else dict(customer.shipping),
        "metadata": dict(customer.metadata),
        "preferred_locales": list(customer.preferred_locales),
        "tax_exempt": customer.tax_exempt.value,
        "default_payment_method_id": customer.default_payment_method_id,
        "deleted_at": customer.deleted_at,
    }


def _from_row(row: Row[tuple[object, ...]]) -> Customer:
    m = row._mapping
    return Customer(
        id=m["id"],
        account_id=m["account_id"],
        created_at=m["created_at"],
        email=m["email"],
        name=m["name"],
        description=m["description"],
        phone=m["phone"],
        business_name=m["business_name"],
        individual_name=m["individual_name"],
        address=m["address"],
        shipping=m["shipping"],
        metadata=m["metadata"],
        preferred_locales=tuple(m["preferred_locales"]),
        tax_exempt=TaxExempt(m["tax_exempt"]),
        default_payment_method_id=m["default_payment_method_id"],
        deleted_at=m["deleted_at"],
    )


class SqlCustomerRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._db = connection

    async def insert(self, customer: Customer) -> None:
        await self._db.execute(
            customers.insert().values(
                id=customer.id,
                account_id=customer.account_id,
                created_at=customer.created_at,
                **_values(customer),
            )
        )

    async def get(
        self,
        account_id: str,
        customer_id: str,
        *,
        for_update: bool = False,
        include_deleted: bool = False,
    ) -> Customer | None:
        """A live (not deleted) customer of the account; with `include_deleted`, a deleted one
        too (its `deleted_at` set)."""
        query = select(customers).where(
            customers.c.account_id == account_id, customers.c.id == customer_id
        )
        if not include_deleted:
            query = query.where(customers.c.deleted_at.is_(None))
        if for_update:
            query = query.with_for_update()
        row = (await self._db.execute(query)).first()
        return None if row is None else _from_row(row)

    async def save(self, customer: Customer) -> None:
        await self._db.execute(
            customers.update()
            .where(customers.c.account_id == customer.account_id, customers.c.id == customer.id)
            .values(**_values(customer))
        )

    async def list(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: tuple[datetime, str] | None,
        ending_before: tuple[datetime, str] | None,
        email: str | None,
        created: tuple[datetime | None, datetime | None, datetime | None, datetime | None],
    ) -> tuple[list[Customer], bool]:
        c = customers.c
        conditions = [c.account_id == account_id, c.deleted_at.is_(None)]
        if email is not None:
            conditions.append(c.email == email)
        gt, gte, lt, lte = created
        for bound, op in (
            (gt, c.created_at.__gt__),
            (gte, c.created_at.__ge__),
            (lt, c.created_at.__lt__),
            (lte, c.created_at.__le__),
        ):
            if bound is not None:
                conditions.append(op(bound))
        rows, has_more = await fetch_page(
            self._db,
            customers,
            conditions,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )
        return [_from_row(row) for row in rows], has_more
