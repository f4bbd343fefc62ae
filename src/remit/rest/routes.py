"""Every REST operation remit serves, in one table."""

from remit.rest import publishable
from remit.rest.app import Operation
from remit.rest.resources import (
    balance,
    balance_transactions,
    charges,
    customers,
    disputes,
    events,
    payment_intents,
    payment_methods,
    payouts,
    radar,
    refunds,
    reviews,
    tokens,
    webhook_endpoints,
)

PI = "/v1/payment_intents"


def all_operations() -> list[Operation]:
    return [
        Operation("POST", PI, payment_intents.CREATE, payment_intents.create),
        Operation("GET", PI, payment_intents.LIST, payment_intents.list_intents),
        # Stripe.js and the mobile SDKs retrieve and confirm with the client secret.
        Operation(
            "GET",
            PI + "/{intent}",
            payment_intents.RETRIEVE,
            payment_intents.retrieve,
            publishable_needs="client_secret",
            publishable_params=publishable.RETRIEVE_PARAMS,
        ),
        Operation("POST", PI + "/{intent}", payment_intents.UPDATE, payment_intents.update),
        Operation(
            "POST",
            PI + "/{intent}/confirm",
            payment_intents.CONFIRM,
            payment_intents.confirm,
            publishable_needs="client_secret",
            publishable_params=publishable.CONFIRM_PARAMS,
        ),
        Operation(
            "POST", PI + "/{intent}/capture", payment_intents.CAPTURE, payment_intents.capture
        ),
        Operation("POST", PI + "/{intent}/cancel", payment_intents.CANCEL, payment_intents.cancel),
        Operation("GET", "/v1/charges", charges.LIST, charges.list_charges),
        Operation("GET", "/v1/charges/{charge}", charges.RETRIEVE, charges.retrieve),
        Operation("POST", "/v1/charges/{charge}", charges.UPDATE, charges.update),
        Operation("POST", "/v1/refunds", refunds.CREATE, refunds.create),
        Operation("GET", "/v1/refunds", refunds.LIST, refunds.list_refunds),
        Operation("GET", "/v1/refunds/{refund}", refunds.RETRIEVE, refunds.retrieve),
        Operation(
            "GET",
            "/v1/charges/{charge}/refunds",
            refunds.CHARGE_REFUNDS,
            refunds.list_charge_refunds,
        ),
        Operation(
            "POST",
            "/v1/charges/{charge}/refunds",
            refunds.CHARGE_REFUND_CREATE,
            refunds.create_for_charge,
        ),
        Operation(
            "GET",
            "/v1/charges/{charge}/refunds/{refund}",
            refunds.RETRIEVE,
            refunds.retrieve_charge_refund,
        ),
        Operation(
            "POST",
            "/v1/charges/{charge}/refunds/{refund}",
            refunds.UPDATE,
            refunds.update_charge_refund,
        ),
        Operation("POST", "/v1/refunds/{refund}", refunds.UPDATE, refunds.update),
        Operation("POST", "/v1/refunds/{refund}/cancel", refunds.CANCEL, refunds.cancel),
        Operation("GET", disputes.PATH, disputes.LIST, disputes.list_disputes),
        Operation("GET", disputes.PATH + "/{dispute}", disputes.RETRIEVE, disputes.retrieve),
        Operation("POST", disputes.PATH + "/{dispute}", disputes.UPDATE, disputes.update),
        Operation("POST", disputes.PATH + "/{dispute}/close", disputes.CLOSE, disputes.close),
        *_card_operations(),
        *_customer_operations(),
        *webhook_operations(),
        *_ledger_operations(),
        *radar_operations(),
    ]


def radar_operations() -> list[Operation]:
    r = radar
    rule, value_list = r.RULES + "/{rule}", r.LISTS + "/{value_list}"
    review = reviews.PATH + "/{review}"
    return [
        Operation("POST", r.RULES, r.RULE_CREATE, r.create_rule),
        Operation("GET", r.RULES, r.RULE_LIST, r.list_rules),
        Operation("GET", rule, r.RETRIEVE, r.retrieve_rule),
        Operation("POST", rule, r.RULE_UPDATE, r.update_rule),
        Operation("DELETE", rule, r.DELETE, r.delete_rule),
        Operation("POST", r.LISTS, r.LIST_CREATE, r.create_list),
        Operation("GET", r.LISTS, r.LIST_LIST, r.list_lists),
        Operation("GET", value_list, r.RETRIEVE, r.retrieve_list),
        Operation("DELETE", value_list, r.DELETE, r.delete_list),
        Operation("POST", r.ITEMS, r.ITEM_CREATE, r.create_item),
        Operation("GET", r.ITEMS, r.ITEM_LIST, r.list_items),
        Operation("DELETE", r.ITEMS + "/{item}", r.DELETE, r.delete_item),
        Operation("GET", reviews.PATH, reviews.LIST, reviews.list_reviews),
        Operation("GET", review, reviews.RETRIEVE, reviews.retrieve),
        Operation("POST", review + "/approve", reviews.APPROVE, reviews.approve),
        Operation("POST", review + "/close", reviews.CLOSE, reviews.close),
    ]


def _card_operations() -> list[Operation]:
    pm = payment_methods
    one = "/v1/payment_methods/{payment_method}"
    return [
        # Publishable keys may create payment methods and tokens (and, with its client
        # secret, retrieve or confirm a PaymentIntent: see all_operations).
        Operation(
            "POST",
            "/v1/payment_methods",
            pm.CREATE,
            pm.create,
            publishable_allowed=True,
            publishable_params=publishable.PAYMENT_METHOD_CREATE_PARAMS,
        ),
        Operation("GET", "/v1/payment_methods", pm.LIST, pm.list_methods),
        Operation("GET", one, pm.RETRIEVE, pm.retrieve),
        Operation("POST", one, pm.UPDATE, pm.update),
        Operation("POST", f"{one}/attach", pm.ATTACH, pm.attach),
        Operation("POST", f"{one}/detach", pm.DETACH, pm.detach),
        Operation(
            "POST",
            "/v1/tokens",
            tokens.CREATE,
            tokens.create,
            publishable_allowed=True,
            publishable_params=publishable.TOKEN_CREATE_PARAMS,
        ),
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
        Operation(
            "GET",
            f"{one}/payment_methods/{{payment_method}}",
            payment_methods.RETRIEVE,
            payment_methods.retrieve_for_customer,
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
        Operation("GET", events.PATH, events.LIST, events.list_events, rendered_by_core=True),
        Operation(
            "GET",
            events.PATH + "/{event}",
            events.RETRIEVE,
            events.retrieve,
            rendered_by_core=True,
        ),
    ]


def _ledger_operations() -> list[Operation]:
    return [
        Operation("GET", "/v1/balance", balance.RETRIEVE, balance.retrieve),
        Operation(
            "GET",
            "/v1/balance_transactions",
            balance_transactions.LIST,
            balance_transactions.list_balance_transactions,
        ),
        Operation(
            "GET",
            "/v1/balance_transactions/{id}",
            balance_transactions.RETRIEVE,
            balance_transactions.retrieve,
        ),
        Operation("POST", "/v1/payouts", payouts.CREATE, payouts.create),
        Operation("GET", "/v1/payouts", payouts.LIST, payouts.list_payouts),
        Operation("GET", "/v1/payouts/{payout}", payouts.RETRIEVE, payouts.retrieve),
        Operation("POST", "/v1/payouts/{payout}", payouts.UPDATE, payouts.update),
        Operation("POST", "/v1/payouts/{payout}/cancel", payouts.CANCEL, payouts.cancel),
    ]
