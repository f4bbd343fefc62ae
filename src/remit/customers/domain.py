"""Customers as frozen values, and the pure rules for changing them."""

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum

from remit.core.metadata import updated_metadata


class TaxExempt(Enum):
    NONE = "none"
    EXEMPT = "exempt"
    REVERSE = "reverse"


@dataclass(frozen=True)
class Customer:
    id: str
    account_id: str
    created_at: datetime
    email: str | None = None
    name: str | None = None
    description: str | None = None
    phone: str | None = None
    business_name: str | None = None
    individual_name: str | None = None
    address: Mapping[str, str] | None = None
    shipping: Mapping[str, object] | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    preferred_locales: tuple[str, ...] = ()
    tax_exempt: TaxExempt = TaxExempt.NONE
    # One of the customer's payment methods (Stripe's invoice_settings.default_payment_method).
    default_payment_method_id: str | None = None
    deleted_at: datetime | None = None


@dataclass(frozen=True)
class CustomerFields:
    """The settable fields of a create or update; None leaves a field alone on update."""

    email: str | None = None
    name: str | None = None
    description: str | None = None
    phone: str | None = None
    business_name: str | None = None
    individual_name: str | None = None
    # The address parts to change (an empty part clears it); `clear_address` drops it all.
    address: Mapping[str, str] | None = None
    clear_address: bool = False
    shipping: Mapping[str, object] | None = None
    clear_shipping: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)
    unset_metadata_keys: tuple[str, ...] = ()
    clear_metadata: bool = False
    preferred_locales: tuple[str, ...] = ()
    tax_exempt: TaxExempt | None = None
    # A pm_ id; an empty string clears the default. The service checks that the customer has
    # this payment method, which takes the database.
    default_payment_method: str | None = None


_TEXT_FIELDS = ("email", "name", "description", "phone", "business_name", "individual_name")


def update_customer(customer: Customer, changes: CustomerFields) -> Customer:
    """Present empty strings clear a text field; absent fields stay as they are."""
    updates: dict[str, object] = {}
    for name in _TEXT_FIELDS:
        value = getattr(changes, name)
        if value is not None:
            updates[name] = value or None
    if changes.clear_address:
        updates["address"] = None
    elif changes.address is not None:
        updates["address"] = merged_address(customer.address, changes.address)
    if changes.clear_shipping:
        updates["shipping"] = None
    elif changes.shipping is not None:
        updates["shipping"] = merged_shipping(customer.shipping, changes.shipping)
    if changes.preferred_locales:
        updates["preferred_locales"] = tuple(changes.preferred_locales)
    if changes.tax_exempt is not None:
        updates["tax_exempt"] = changes.tax_exempt
    if changes.default_payment_method is not None:
        updates["default_payment_method_id"] = changes.default_payment_method or None
    updates["metadata"] = updated_metadata(
        customer.metadata,
        clear=changes.clear_metadata,
        unset=changes.unset_metadata_keys,
        values=changes.metadata,
    )
    return replace(customer, **updates)  # type: ignore[arg-type]


def merged_address(
    current: Mapping[str, str] | None, changes: Mapping[str, str]
) -> dict[str, str] | None:
    """Stripe updates an address part by part: a part given replaces that part, an empty
    part clears it, parts not given stay. Nothing left means no address."""
    address = dict(current or {})
    for part, text in changes.items():
        if text == "":
            address.pop(part, None)
        else:
            address[part] = text
    return address or None


def merged_shipping(
    current: Mapping[str, object] | None, changes: Mapping[str, object]
) -> dict[str, object]:
    """Shipping updates as the address does (and a payment method's billing details): a field
    given replaces that field, an empty one clears it, fields not given stay, and the address
    within merges part by part. `shipping[name]=Ada&shipping[address][city]=Nice` keeps the
    street and the phone already there."""
    shipping = dict(current or {})
    for key, value in changes.items():
        if key == "address" and isinstance(value, Mapping):
            stored = shipping.get("address")
            before = stored if isinstance(stored, Mapping) else None
            # Stripe's shipping always has an address, each part null when unknown.
            shipping["address"] = merged_address(before, value) or {}
        elif value == "":
            shipping.pop(key, None)
        else:
            shipping[key] = value
    return shipping


def new_customer(
    fields: CustomerFields, *, customer_id: str, account_id: str, now: datetime
) -> Customer:
    blank = Customer(id=customer_id, account_id=account_id, created_at=now)
    return update_customer(blank, fields)
