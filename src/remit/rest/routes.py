"""Every REST operation remit serves, in one table."""

from remit.rest.app import Operation
from remit.rest.resources import events, payment_intents, webhook_endpoints


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
        *webhook_operations(),
    ]


def webhook_operations() -> list[Operation]:
    endpoints, one_endpoint = webhook_endpoints.PATH, webhook_endpoints.PATH + "/{endpoint}"
    return [
        Operation("POST", endpoints, webhook_endpoints.CREATE, webhook_endpoints.create),
        Operation("GET", endpoints, webhook_endpoints.LIST, webhook_endpoints.list_endpoints),
        Operation("GET", one_endpoint, webhook_endpoints.RETRIEVE, webhook_endpoints.retrieve),
        Operation("POST", one_endpoint, webhook_endpoints.UPDATE, webhook_endpoints.update),
        Operation("DELETE", one_endpoint, webhook_endpoints.DELETE, webhook_endpoints.delete),
        Operation("GET", events.PATH, events.LIST, events.list_events),
        Operation("GET", events.PATH + "/{event}", events.RETRIEVE, events.retrieve),
    ]
