"""Every REST operation remit serves, in one table."""

from remit.rest.app import Operation
from remit.rest.resources import payment_intents


def all_operations() -> list[Operation]:
    return [
        Operation("POST", "/v1/payment_intents", payment_intents.CREATE, payment_intents.create),
        Operation("GET", "/v1/payment_intents", payment_intents.LIST, payment_intents.list_intents),
        Operation(
            "GET",
            "/v1/payment_intents/{intent}",
            payment_intents.RETRIEVE,
            payment_intents.retrieve,
        ),
    ]
