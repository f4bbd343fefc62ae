"""Stripe's address, billing details and shipping parameters, shared by several resources."""

from collections.abc import Mapping
from typing import Final, Protocol

from remit.rest.params import UNSET, Email, Field, Object, String
from remit_api.common.v1 import common_pb2

ADDRESS_FIELDS: Final = ("city", "country", "line1", "line2", "postal_code", "state")


def address_field(*, unsettable: bool = False) -> Object:
    # Address parts, like the names and phones below, take Stripe's default limit on text.
    part = String(unsettable=unsettable)
    return Object(dict.fromkeys(ADDRESS_FIELDS, part), unsettable=unsettable)


def billing_details_field(*, unsettable: bool = False) -> Object:
    fields: dict[str, Field[object]] = {
        "address": address_field(unsettable=unsettable),
        "email": Email(max_length=800, unsettable=unsettable),
        "name": String(unsettable=unsettable),
        "phone": String(unsettable=unsettable),
        "tax_id": String(max_length=200, unsettable=unsettable),
    }
    return Object(fields)


def shipping_field(*, unsettable: bool = False) -> Object:
    return Object(
        {
            "address": address_field(),
            "name": String(),
            "phone": String(),
            "carrier": String(),
            "tracking_number": String(),
        },
        required={"address", "name"},
        unsettable=unsettable,
    )


def _text(value: object) -> str | None:
    """A parsed string; `UNSET` (the client sent "") becomes a present empty string."""
    if value is UNSET:
        return ""
    return value if isinstance(value, str) else None


def address_message(values: Mapping[str, object]) -> common_pb2.Address:
    message = common_pb2.Address()
    for name in ADDRESS_FIELDS:
        text = _text(values.get(name))
        if text is not None:
            setattr(message, name, text)
    return message


def billing_details_message(values: object) -> common_pb2.BillingDetails | None:
    if not isinstance(values, dict):
        return None
    message = common_pb2.BillingDetails()
    for name in ("email", "name", "phone", "tax_id"):
        text = _text(values.get(name))
        if text is not None:
            setattr(message, name, text)
    address = values.get("address")
    if isinstance(address, dict):
        message.address.CopyFrom(address_message(address))
    elif address is UNSET:
        # `billing_details[address]=` clears the address: every part present and empty, which
        # the merge of billing details reads as "clear this part".
        message.address.CopyFrom(cleared_address_message())
    return message


def cleared_address_message() -> common_pb2.Address:
    """An address whose every part is present and empty."""
    return common_pb2.Address(**dict.fromkeys(ADDRESS_FIELDS, ""))


def shipping_message(values: Mapping[str, object]) -> common_pb2.Shipping:
    message = common_pb2.Shipping()
    address = values.get("address")
    if isinstance(address, dict):
        message.address.CopyFrom(address_message(address))
    for name in ("name", "phone", "carrier", "tracking_number"):
        text = _text(values.get(name))
        if text is not None:
            setattr(message, name, text)
    return message


class _ShippingRequest(Protocol):
    @property
    def shipping(self) -> common_pb2.Shipping: ...

    clear_shipping: bool


def put_shipping(request: _ShippingRequest, params: Mapping[str, object]) -> None:
    """`shipping` as given (its fields set), or cleared when given empty (`shipping=`)."""
    shipping = params.get("shipping")
    if isinstance(shipping, dict):
        request.shipping.CopyFrom(shipping_message(shipping))
    request.clear_shipping = shipping is UNSET
