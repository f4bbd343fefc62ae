"""A payment method's billing details as the protobuf message the payments API and the vault
both take."""

from collections.abc import Mapping
from typing import Final

from remit_api.common.v1 import common_pb2

ADDRESS_FIELDS: Final = ("city", "country", "line1", "line2", "postal_code", "state")


def billing_details_message(details: Mapping[str, object]) -> common_pb2.BillingDetails:
    message = common_pb2.BillingDetails()
    for name in ("email", "name", "phone", "tax_id"):
        value = details.get(name)
        if isinstance(value, str):
            setattr(message, name, value)
    address = details.get("address")
    if isinstance(address, Mapping):
        message.address.CopyFrom(
            common_pb2.Address(**{k: str(v) for k, v in address.items() if k in ADDRESS_FIELDS})
        )
    return message


def rendered_billing_details(details: Mapping[str, object]) -> common_pb2.BillingDetails:
    """The billing details as a charge or a payment method shows them: as Stripe renders them,
    the address is always an object, each part of it null when unknown (a client reads
    `billing_details.address.country` without checking the address first)."""
    message = billing_details_message(details)
    message.address.SetInParent()
    return message
