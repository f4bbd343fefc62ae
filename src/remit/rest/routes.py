"""Every REST operation remit serves, in one table."""

from remit.rest.app import Operation
from remit.rest.resources import charges, payment_intents, refunds

PI = "/v1/payment_intents"


def all_operations() -> list[Operation]:
    return [
        Operation("POST", PI, payment_intents.CREATE, payment_intents.create),
        Operation("GET", PI, payment_intents.LIST, payment_intents.list_intents),
        Operation("GET", PI + "/{intent}", payment_intents.RETRIEVE, payment_intents.retrieve),
        Operation("POST", PI + "/{intent}", payment_intents.UPDATE, payment_intents.update),
        Operation(
            "POST", PI + "/{intent}/confirm", payment_intents.CONFIRM, payment_intents.confirm
        ),
        Operation(
            "POST", PI + "/{intent}/capture", payment_intents.CAPTURE, payment_intents.capture
        ),
        Operation("POST", PI + "/{intent}/cancel", payment_intents.CANCEL, payment_intents.cancel),
        Operation("GET", "/v1/charges", charges.LIST, charges.list_charges),
        Operation("GET", "/v1/charges/{charge}", charges.RETRIEVE, charges.retrieve),
        Operation("POST", "/v1/refunds", refunds.CREATE, refunds.create),
        Operation("GET", "/v1/refunds", refunds.LIST, refunds.list_refunds),
        Operation("GET", "/v1/refunds/{refund}", refunds.RETRIEVE, refunds.retrieve),
        Operation("POST", "/v1/refunds/{refund}", refunds.UPDATE, refunds.update),
        Operation("POST", "/v1/refunds/{refund}/cancel", refunds.CANCEL, refunds.cancel),
    ]
