"""Which internal RPCs each role may call: everything a process of that role calls, nothing more.

The lists follow the code that makes the calls, so that a process taken over reaches no more
than it already needed:

- api: what the REST facade's handlers call (`remit.rest`): authenticating API keys and pinning
  versions, payments and everything under them, webhook endpoints and events, balance and
  payouts, Radar rules and lists, and card tokenization in the vault. Not API keys, account
  settings, webhook redelivery, ledger postings or any vault key management.
- core and worker: the payment path's calls into the vault and the acquirer
  (`remit.payments.network`, `remit.payment_methods.vault_client`); the core also reads
  settlement reports for reconciliation (and looks operations up, as the payment path does,
  to place an item on its settlement day) and changes a saved card's expiry and billing
  details in the vault when its payment method is updated; both check a fingerprint an
  idempotency key recorded a card by against the card's own (`remit.payment_methods.service`,
  a key recorded before vault migration 0010); the worker lists and deletes vault
  cards no payment method references (`remit.payment_methods.vault_sweep`), and checks the
  fingerprints the core holds against the cards' own (`remit.payment_methods.
  fingerprint_conversion`).
- vault: authorizations forwarded to the acquirer (`remit.vault.forwarding`).
- acquirer: nothing; it calls no one.
- admin: every method of every service, reflection included (the CLI's commands: API keys,
  account settings, vault keys, audit events, webhook redelivery, ...).

A service missing from a role's map is closed to it, and so is a service added later until it
is listed here. Health checks are open to every caller (`internal_auth`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from remit.grpcutil.internal_roles import ACQUIRER, ADMIN, API, CORE, VAULT, WORKER

ACCOUNTS: Final = "remit_api.accounts.v1.AccountsService"
PAYMENTS: Final = "remit_api.payments.v1.PaymentsService"
WEBHOOKS: Final = "remit_api.webhooks.v1.WebhooksService"
LEDGER: Final = "remit_api.ledger.v1.LedgerService"
RADAR: Final = "remit_api.radar.v1.RadarService"
VAULT_SERVICE: Final = "remit_api.vault.v1.VaultService"
ACQUIRER_SERVICE: Final = "remit_api.acquirer.v1.AcquirerService"

# The payment path: reading and resolving cards, authorizing through the vault, and the
# acquirer's operations on an authorization (and finding out how an unanswered one ended).
_PAYMENT_PATH_VAULT: Final = frozenset(
    {"ResolveTestCard", "GetCardDetails", "ForwardAuthorization", "DeleteCard"}
)
_PAYMENT_PATH_ACQUIRER: Final = frozenset({"Capture", "Void", "Refund", "LookupOperation"})

# What the REST facade calls, by service.
_API_PAYMENTS: Final = frozenset(
    {
        "CreatePaymentIntent", "GetPaymentIntent", "UpdatePaymentIntent", "ConfirmPaymentIntent",
        "CapturePaymentIntent", "CancelPaymentIntent", "ListPaymentIntents", "GetCharge",
        "UpdateCharge", "ListCharges", "CreateRefund", "GetRefund", "UpdateRefund", "CancelRefund",
        "ListRefunds", "ListChargesOfPaymentIntents", "ListRefundsOfCharges", "CreateCustomer",
        "GetCustomer", "UpdateCustomer", "DeleteCustomer", "ListCustomers", "CreatePaymentMethod",
        "GetPaymentMethod", "UpdatePaymentMethod", "ListPaymentMethods", "AttachPaymentMethod",
        "DetachPaymentMethod", "CreateToken", "GetToken", "GetThreeDSecureChallenge",
        "CompleteThreeDSecureChallenge", "GetReview", "ListReviews", "ApproveReview",
        "CloseReview", "GetDispute", "ListDisputes", "UpdateDispute", "CloseDispute",
    }
)  # fmt: skip
_API_WEBHOOKS: Final = frozenset(
    {
        "CreateWebhookEndpoint", "GetWebhookEndpoint", "UpdateWebhookEndpoint",
        "DeleteWebhookEndpoint", "ListWebhookEndpoints", "GetEvent", "ListEvents",
    }
)  # fmt: skip
_API_LEDGER: Final = frozenset(
    {
        "GetBalance", "GetBalanceTransaction", "ListBalanceTransactions", "CreatePayout",
        "GetPayout", "ListPayouts", "CancelPayout", "UpdatePayout",
    }
)  # fmt: skip
_API_RADAR: Final = frozenset(
    {
        "CreateRule", "GetRule", "GetRules", "ListRules", "UpdateRule", "DeleteRule",
        "CreateValueList", "GetValueList", "ListValueLists", "DeleteValueList",
        "AddValueListItem", "RemoveValueListItem", "ListValueListItems",
    }
)  # fmt: skip

ALLOWED: Final[Mapping[str, Mapping[str, frozenset[str]]]] = {
    API: {
        ACCOUNTS: frozenset({"AuthenticateApiKey", "PinApiVersion", "ListKeyDigests"}),
        PAYMENTS: _API_PAYMENTS,
        WEBHOOKS: _API_WEBHOOKS,
        LEDGER: _API_LEDGER,
        RADAR: _API_RADAR,
        VAULT_SERVICE: frozenset({"TokenizeCard"}),
    },
    CORE: {
        # The core also changes a saved card's expiry and billing details
        # (`remit.payment_methods.service`, on a payment method's update).
        VAULT_SERVICE: _PAYMENT_PATH_VAULT | {"UpdateCardDetails", "CheckCardFingerprints"},
        ACQUIRER_SERVICE: _PAYMENT_PATH_ACQUIRER | {"GetSettlementReport"},
    },
    WORKER: {
        VAULT_SERVICE: _PAYMENT_PATH_VAULT | {"ListCardsCreatedBefore", "CheckCardFingerprints"},
        ACQUIRER_SERVICE: _PAYMENT_PATH_ACQUIRER,
    },
    VAULT: {ACQUIRER_SERVICE: frozenset({"Authorize"})},
    ACQUIRER: {},
}


def split_method(method: str) -> tuple[str, str]:
    """`/package.Service/Method` -> (`package.Service`, `Method`)."""
    service, _, name = method.lstrip("/").partition("/")
    return service, name


def may_call(role: str, method: str) -> bool:
    """Whether a caller of `role` may call `method` (a full gRPC method path)."""
    if role == ADMIN:
        return True
    service, name = split_method(method)
    return name in ALLOWED.get(role, {}).get(service, frozenset())
