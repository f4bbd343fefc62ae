"""Every REST operation remit serves, in one table."""

from remit.rest.app import Operation
from remit.rest.resources import (
    customers,
    events,
    payment_intents,
    payment_methods,
    tokens,
    webhook_endpoints,
)


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
        *_card_operations(),
        *_customer_operations(),
        *webhook_operations(),
    ]


def _card_operations() -> list[Operation]:
    pm = payment_methods
    one = "/v1/payment_methods/{payment_method}"
    return [
        # Publishable keys may create payment methods and tokens, and nothing else.
        Operation("POST", "/v1/payment_methods", pm.CREATE, pm.create, publishable_allowed=True),
        Operation("GET", "/v1/payment_methods", pm.LIST, pm.list_methods),
        Operation("GET", one, pm.RETRIEVE, pm.retrieve),
        Operation("POST", one, pm.UPDATE, pm.update),
        Operation("POST", f"{one}/attach", pm.ATTACH, pm.attach),
        Operation("POST", f"{one}/detach", pm.DETACH, pm.detach),
        Operation("POST", "/v1/tokens", tokens.CREATE, tokens.create, publishable_allowed=True),
        Operation("GET", "/v1/tokens/{token}", tokens.RETRIEVE, tokens.retrieve),
    ]


def _customer_operations() -> list[Operation]:
    one = "/v1/customers/{customer}"
    return [
        Operation("POST", "/v1/customers", customers.CREATE, customers.create),
        Operation("GET", "/v1/customers", customers.LIST, customers.list_customers),
        Operation("GET", one, customers.RETRIEVE, customers.retrieve),
        Operation("POST", one, customers.UPDATE, customers.update),
        Operation("DELETE", one, customers.DELETE, customers.delete),
        Operation(
            "GET",
            f"{one}/payment_methods",
            payment_methods.CUSTOMER_LIST,
            payment_methods.list_for_customer,
        ),
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
