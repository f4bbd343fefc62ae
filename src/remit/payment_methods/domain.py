"""PaymentMethods and Tokens as frozen values. The card number is never here: only the vault
token that names it and the details the vault chose to share."""

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final

from remit.core.errors import ErrorKind, RemitError, echoed, invalid
from remit.radar.ip_addresses import ZONE_REFUSED, canonical_form, client_address, zoned

# Stripe's allow_redisplay when none was given.
UNSPECIFIED_REDISPLAY: Final = "unspecified"

SPENT_MESSAGE = (
    "The provided PaymentMethod was previously used with a PaymentIntent without Customer "
    "attachment, shared with a connected account without Customer attachment, or was detached "
    "from a Customer. It may not be used again. To use a PaymentMethod multiple times, you must "
    "attach it to a Customer first."
)


def client_ip_address(value: str) -> str:
    """A token's `client_ip`: an IPv4 or IPv6 address, in the canonical form Radar gives
    every address (remit.radar.ip_addresses: RFC 5952's `2001:db8::1`, and an IPv4-mapped
    `::ffff:203.0.113.7` as its IPv4 address `203.0.113.7`).

    A zone (`fe80::1%eth0`) names an interface of the machine that saw the address, never
    where a client is, so an address with one is refused too, as everywhere remit takes a
    client's address (remit.radar.ip_addresses)."""
    address = client_address(value)
    if address is None:
        why = f"; {ZONE_REFUSED}" if zoned(value) else ""
        raise invalid(
            f"Invalid client_ip: '{echoed(value)}' is not an IP address{why}.", "client_ip"
        )
    return canonical_form(address)


def _refused_by_its_state(message: str) -> RemitError:
    """Stripe's 400 parameter_invalid on `payment_method`, for a refusal by the payment method's
    state rather than by the request's parameters: FAILED_PRECONDITION, which a call under an
    idempotency key stores and replays (`payments.keyed`). The state can change (the intent that
    spent it may yet save it, with setup_future_usage; it may be attached to the customer), and
    a retry with the key after it did must replay the refusal, not pay: one key, one outcome."""
    return RemitError(
        message=message,
        kind=ErrorKind.FAILED_PRECONDITION,
        code="parameter_invalid",
        param="payment_method",
    )


def spent_payment_method() -> RemitError:
    """Stripe's refusal of a payment method spent on another intent (`spent_elsewhere`), by
    its state (`_refused_by_its_state`)."""
    return _refused_by_its_state(SPENT_MESSAGE)


def another_customers_method(
    method_id: str, owner_id: str, intent_customer_id: str | None
) -> RemitError:
    """Stripe's refusal of a payment method saved to the customer `owner_id` for an intent of
    another customer, or of none (which would charge a saved card without its customer being
    named). A refusal by the method's state (`_refused_by_its_state`): it may yet be attached
    to the intent's customer."""
    if intent_customer_id is None:
        message = (
            f"The PaymentMethod {method_id} belongs to the Customer {owner_id}. "
            "Include that Customer in the `customer` parameter of the PaymentIntent."
        )
    else:
        message = (
            f"The PaymentMethod {method_id} belongs to another Customer than "
            f"{intent_customer_id}. Payment methods attached to other Customers cannot be used "
            "with this PaymentIntent."
        )
    return _refused_by_its_state(message)


@dataclass(frozen=True)
class CardSummary:
    """What the vault tells the core about a card (brand etc. in Stripe's lowercase words)."""

    brand: str
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str
    funding: str
    country: str | None
    # The vault said `fingerprint` is the account's own (vault migration 0010), as it never
    # changes again; else it may be the one every account shared, for the worker's conversion
    # to check (`remit.payment_methods.fingerprint_conversion`).
    account_fingerprint: bool = False


@dataclass(frozen=True)
class VaultCard:
    vault_token: str
    card: CardSummary
    # The Stripe test id the card stands for (test mode only): the one it was resolved from
    # (pm_card_visa), or the one the vault reads its number as (4242 4242 4242 4242 given as
    # a number). Payments and Radar treat the card as that test id.
    test_id: str | None = None


@dataclass(frozen=True)
class StoredVaultCard:
    """A card the vault holds, as its listing shows it: no card details at all."""

    vault_token: str
    account_id: str
    created_at: datetime


@dataclass(frozen=True)
class VaultCardPage:
    """A page of the vault's listing of old cards: the cards listed, whether more follow, and
    the last card the vault read for it, listed or not (it leaves out cards whose binding to
    their account it cannot vouch for, and reads a bounded number per page): the next page
    starts after it. None when the vault read no card, or is a version that does not say."""

    cards: list[StoredVaultCard]
    has_more: bool
    scanned_through: StoredVaultCard | None = None

    @property
    def resume_after(self) -> StoredVaultCard | None:
        """The card the next page starts after."""
        if self.scanned_through is not None:
            return self.scanned_through
        return self.cards[-1] if self.cards else None


@dataclass(frozen=True)
class PaymentMethod:
    id: str
    account_id: str
    vault_token: str
    card: CardSummary
    created_at: datetime
    billing_details: Mapping[str, object] = field(default_factory=dict)
    metadata: Mapping[str, str] = field(default_factory=dict)
    customer_id: str | None = None
    allow_redisplay: str | None = None
    detached_at: datetime | None = None
    # The Stripe test id (pm_card_visa) this method was made from, if any.
    test_id: str | None = None
    # The PaymentIntent that used it while it was attached to no customer (`spent_for`).
    spent_by_intent_id: str | None = None
    # That intent went through (succeeded, or authorized for a later capture) with
    # `setup_future_usage`: the cardholder agreed to its reuse, so it may still be attached to a
    # customer (Stripe: "If no Customer was provided, the payment method can still be attached
    # to a Customer after the transaction completes"). It still pays no other intent until then.
    saved_for_future_usage: bool = False
    # The network transaction id of the payment in which the cardholder agreed to off-session
    # payments with this card (setup_future_usage=off_session): later off-session payments
    # cite it, as the networks' stored-credential rules ask. Never shown.
    off_session_setup_transaction_id: str | None = None

    @property
    def usable(self) -> bool:
        """Stripe never lets a detached payment method be used again."""
        return self.detached_at is None

    def detached(self, now: datetime) -> "PaymentMethod":
        """Taken off its customer for good: Stripe never lets a detached payment method be
        used or attached again."""
        return replace(self, customer_id=None, detached_at=now)

    def spent_for(self, intent_id: str | None) -> bool:
        """Whether it may not pay `intent_id` (None: no intent, as when attaching it): used
        already by another intent while attached to no customer. Attached since (saved for
        future usage by the payment that used it), it is the customer's to reuse; saved for
        future usage by a payment without a customer, it may still be attached to one."""
        if intent_id is None and self.saved_for_future_usage:
            return False
        return spent_elsewhere(self.customer_id, self.spent_by_intent_id, intent_id)


def spent_elsewhere(
    customer_id: str | None, spent_by_intent_id: str | None, intent_id: str | None
) -> bool:
    """Stripe's rule for a payment method used without a customer: it pays that one intent only
    (as long as it stays attached to no customer)."""
    return (
        customer_id is None and spent_by_intent_id is not None and spent_by_intent_id != intent_id
    )


@dataclass(frozen=True)
class Token:
    id: str
    account_id: str
    card_id: str
    vault_token: str
    card: CardSummary
    created_at: datetime
    name: str | None = None
    address: Mapping[str, str] = field(default_factory=dict)
    client_ip: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    used: bool = False
    test_id: str | None = None


@dataclass(frozen=True)
class NewPaymentMethod:
    """A create call: exactly one source of card details."""

    vault_token: str | None = None
    token_id: str | None = None
    payment_method_id: str | None = None
    billing_details: Mapping[str, object] = field(default_factory=dict)
    metadata: Mapping[str, str] = field(default_factory=dict)
    allow_redisplay: str | None = None


@dataclass(frozen=True)
class PaymentMethodChanges:
    billing_details: Mapping[str, object] | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    unset_metadata_keys: tuple[str, ...] = ()
    clear_metadata: bool = False
    exp_month: int | None = None
    exp_year: int | None = None
    allow_redisplay: str | None = None


def merge_billing_details(
    current: Mapping[str, object], changes: Mapping[str, object]
) -> dict[str, object]:
    """Fields present replace (an empty string clears); the address merges field by field."""
    merged = dict(current)
    for key, value in changes.items():
        if key == "address" and isinstance(value, Mapping):
            address = dict(merged.get("address") or {})  # type: ignore[call-overload]
            for part, text in value.items():
                if text == "":
                    address.pop(part, None)
                else:
                    address[part] = text
            merged["address"] = address or None
        elif value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return {key: value for key, value in merged.items() if value is not None}


def billing_from_token(token: Token) -> dict[str, object]:
    """Stripe carries a token's cardholder name and address into the payment method."""
    details: dict[str, object] = {}
    if token.name:
        details["name"] = token.name
    if token.address:
        details["address"] = dict(token.address)
    return details
