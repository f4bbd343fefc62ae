"""Every REST operation remit serves, in one table."""

from remit.rest.app import Operation
from remit.rest.resources import balance, balance_transactions, payment_intents, payouts


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
