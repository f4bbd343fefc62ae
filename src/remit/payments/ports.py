"""What the payments service needs from elsewhere, as small interfaces.

Payment methods (owned by the payment-methods module and the vault), and hooks that other
parts of the core (the ledger, events) attach to money movements. Hooks run inside the same
database transaction as the state change that causes them, so both commit or neither does.
"""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.errors import RemitError
from remit.payments.charges import CardSnapshot, Charge, Refund
from remit.payments.domain import PaymentIntent
from remit.payments.idempotency import KeyRecord
from remit.payments.risk import NOT_ASSESSED, Authentication, RiskVerdict


@dataclass(frozen=True)
class Paying:
    """The intent a card is to pay, as the request leaves it: the one an attempt pays (a
    confirmation's, or the authenticated one a passed challenge goes on with:
    `paying_with_its_card`), or the one a create or an update names it for
    (`named_with_its_card`)."""

    intent_id: str
    customer_id: str | None
    # False for a payment that saves a card attached to no customer for the intent's customer
    # (Stripe's `setup_future_usage`), and for a create or an update that only names it: the
    # card is checked, not spent (`_spends_its_card`).
    spends: bool = True


@dataclass(frozen=True)
class ChargeableCard:
    """A payment method the network can be asked to charge: a vault token and what may be
    shown about the card."""

    payment_method_id: str
    vault_token: str
    card: CardSnapshot
    customer_id: str | None = None
    # The Stripe test id (pm_card_riskLevelHighest) the method was made from, if any.
    test_id: str | None = None
    # The payment method's billing details, which a charge made with it copies.
    billing_details: Mapping[str, object] = field(default_factory=dict)
    # The intent that used it while it was attached to no customer: no other intent may.
    spent_by_intent_id: str | None = None
    # The network transaction id of the payment that set the card up for off-session
    # payments, which an off-session payment with it cites.
    off_session_setup_transaction_id: str | None = None
    # For a payment method made for this request (a Stripe test id's, such as pm_card_visa, or
    # one made of the card the request gives, Stripe's payment_method_data): writes it in the
    # caller's transaction. Made there, it is not made by a request that is
    # refused or rolled back, or that replays its key's answer. For a saved one, given the
    # intent it is to pay (the second argument): checks again, under the row's lock, what
    # was checked on the copy read before the transaction (detached, another customer's, spent
    # on another intent), and spends it on the intent if it is attached to no customer and
    # the intent spends it (`Paying.spends`).
    save_in: Callable[[AsyncConnection, Paying | None], Awaitable[None]] | None = field(
        default=None, compare=False, repr=False
    )


# The card of the payment method a create or a confirmation makes (Stripe's
# `payment_method_data`), resolved before the request's key is checked; or the refusal of that
# card, which the request raises once it finds its key fresh, so that a retry still replays.
NewCard = ChargeableCard | RemitError


async def save_card_in(
    db: AsyncConnection, card: ChargeableCard, paying: Paying | None = None
) -> None:
    """Write the card's payment method in the transaction that uses it, if it is new. Given
    `paying` (the intent it is to pay), a saved one is checked again under its row lock, as
    it is now, and spent on that intent if it is attached to no customer (Stripe lets such a
    payment method pay one intent only), unless the intent does not spend it
    (`Paying.spends`: the payment saves it, or the request only names it)."""
    if card.save_in is not None:
        await card.save_in(db, paying)


class PaymentMethodSource(Protocol):
    async def chargeable_card(self, account_id: str, payment_method_id: str) -> ChargeableCard:
        """The card behind a payment method of this account (NOT_FOUND if there is none).
        Writes nothing: a test id's new payment method is written by the transaction that uses
        it (`save_card_in`). Resolving a test id may ask the vault, so callers resolve the card
        before opening their transaction where they can."""
        ...

    async def attempt_vault_token(self, account_id: str, payment_method_id: str) -> str:
        """The vault token of the payment method a stored attempt chose, whether or not that
        payment method may pay again (detached since): the attempt was decided when it could,
        and finishing it must not depend on what became of it. NOT_FOUND only if there is no
        such payment method."""
        ...

    async def attempt_card(self, account_id: str, payment_method_id: str) -> ChargeableCard:
        """The card of the payment method a stored attempt chose, as `attempt_vault_token`
        reads it: whether or not that payment method may pay again."""
        ...

    def card_refused(self, account_id: str, vault_token: str) -> None:
        """The vault refused to open this card for a charge: resolve nothing to it again."""
        ...


class PaymentHooks(Protocol):
    """Called in the transaction of the change; an exception rolls the change back."""

    async def intent_changed(
        self, db: AsyncConnection, before: PaymentIntent | None, after: PaymentIntent
    ) -> None: ...

    async def charge_changed(
        self, db: AsyncConnection, before: Charge | None, after: Charge, intent: PaymentIntent
    ) -> None: ...

    async def refund_changed(
        self, db: AsyncConnection, before: Refund | None, after: Refund, charge: Charge
    ) -> None: ...


@dataclass(frozen=True)
class AttemptFacts:
    """What Radar may know about a payment attempt before the network is asked."""

    account_id: str
    payment_intent_id: str
    charge_id: str
    amount_minor: int
    currency: str
    card: CardSnapshot
    at: datetime
    customer_id: str | None = None
    # The intent's receipt email, and the email of the payment method's billing details
    # (`:email:` takes the first there is, remit.radar.signals).
    email: str | None = None
    billing_email: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    test_id: str | None = None
    off_session: bool = False
    three_d_secure_authenticated: bool = False


@dataclass(frozen=True)
class Challenge:
    """A 3-D Secure challenge opened for an attempt: its id and the page to send the buyer to."""

    id: str
    url: str


class PaymentEnd(Enum):
    """How a payment under review ended without the review: the review closes with it, with
    Stripe's `closed_reason` of the same value."""

    # Refunded in full (`fraudulent` as the last refund's reason: as fraud).
    REFUNDED = "refunded"
    REFUNDED_AS_FRAUD = "refunded_as_fraud"
    # Its intent was canceled, releasing the authorization.
    CANCELED = "canceled"
    # The authorization expired uncaptured.
    NEVER_SETTLED = "payment_never_settled"


class RadarGate(Protocol):
    """Radar as the payments service sees it. Every call runs inside the caller's transaction,
    so counters, decisions, reviews and challenges commit with the attempt or not at all."""

    async def assess(self, db: AsyncConnection, facts: AttemptFacts) -> RiskVerdict:
        """Count the attempt, score it and apply the account's rules (before the network)."""
        ...

    async def reassess(self, db: AsyncConnection, facts: AttemptFacts) -> RiskVerdict:
        """The decision after 3-D Secure succeeded: the same signals, without counting again."""
        ...

    async def attempt_settled(self, db: AsyncConnection, charge: Charge) -> None:
        """The network answered (or Radar blocked): decline counters and check results."""
        ...

    async def open_review(
        self, db: AsyncConnection, charge: Charge, intent: PaymentIntent, verdict: RiskVerdict
    ) -> str:
        """Open a review of an authorized charge; returns its rev_ id."""
        ...

    async def review_is_open(self, db: AsyncConnection, review_id: str) -> bool: ...

    async def payment_ended(
        self,
        db: AsyncConnection,
        account_id: str,
        review_id: str,
        end: PaymentEnd,
        *,
        by: KeyRecord | None,
    ) -> None:
        """The payment review `review_id` is about ended (`end`) under the request keyed `by`
        (None: the worker): the review closes if it is still open (`review.closed`), unless
        the request is that review's own close refunding or canceling it, which closes it
        itself. Called with the payment's intent and charge, whichever the caller changes,
        locked: reviews are locked after them."""
        ...

    async def open_challenge(
        self, db: AsyncConnection, charge: Charge, intent: PaymentIntent
    ) -> Challenge | None:
        """Start a 3-D Secure challenge for the attempt (None: none can be offered)."""
        ...


class NoRadar:
    """No scoring, no rules, no challenges: every attempt goes to the network as it is."""

    async def assess(self, db: AsyncConnection, facts: AttemptFacts) -> RiskVerdict:
        return NOT_ASSESSED

    async def reassess(self, db: AsyncConnection, facts: AttemptFacts) -> RiskVerdict:
        return NOT_ASSESSED

    async def attempt_settled(self, db: AsyncConnection, charge: Charge) -> None:
        return None

    async def open_review(
        self, db: AsyncConnection, charge: Charge, intent: PaymentIntent, verdict: RiskVerdict
    ) -> str:
        raise NotImplementedError("reviews need Radar")

    async def review_is_open(self, db: AsyncConnection, review_id: str) -> bool:
        return False

    async def payment_ended(
        self,
        db: AsyncConnection,
        account_id: str,
        review_id: str,
        end: PaymentEnd,
        *,
        by: KeyRecord | None,
    ) -> None:
        return None

    async def open_challenge(
        self, db: AsyncConnection, charge: Charge, intent: PaymentIntent
    ) -> Challenge | None:
        return None


class HookChain:
    """Runs several hook sets in order."""

    def __init__(self, hooks: Sequence[PaymentHooks] = ()) -> None:
        self._hooks = list(hooks)

    def add(self, hooks: PaymentHooks) -> None:
        self._hooks.append(hooks)

    async def intent_changed(
        self, db: AsyncConnection, before: PaymentIntent | None, after: PaymentIntent
    ) -> None:
        for hooks in self._hooks:
            await hooks.intent_changed(db, before, after)

    async def charge_changed(
        self, db: AsyncConnection, before: Charge | None, after: Charge, intent: PaymentIntent
    ) -> None:
        for hooks in self._hooks:
            await hooks.charge_changed(db, before, after, intent)

    async def refund_changed(
        self, db: AsyncConnection, before: Refund | None, after: Refund, charge: Charge
    ) -> None:
        for hooks in self._hooks:
            await hooks.refund_changed(db, before, after, charge)

    async def charge_and_intent_changed(
        self,
        db: AsyncConnection,
        charge: tuple[Charge, Charge],
        intent: tuple[PaymentIntent, PaymentIntent],
    ) -> None:
        """One change of a charge and its intent, each as (before, after): every hook set sees
        the charge's change, then the intent's, before the next set sees either. A set late in
        the chain therefore does its work at the very end of the transaction: the ledger, which
        takes the account's chain lock and holds it until commit. For a payment captured at
        once that is one posting, sent with the COMMIT. A separate capture takes the lock with
        an answered round trip, then reads the charge's reservation and posts it in several
        more, all under the lock (`remit.ledger.postings`; a cancel voids it the same way):
        the expiry job voids lapsed reservations under that lock, so only a read made under it
        decides soundly between posting the reservation and booking the capture as lapsed."""
        for hooks in self._hooks:
            await hooks.charge_changed(db, charge[0], charge[1], intent[1])
            await hooks.intent_changed(db, intent[0], intent[1])


def attempt_facts(
    intent: PaymentIntent, charge: Charge, card: ChargeableCard, now: datetime
) -> AttemptFacts:
    """What Radar is told about an attempt: never the card number, which the core has not."""
    authentication = Authentication.from_json(charge.authentication)
    return AttemptFacts(
        account_id=intent.account_id,
        payment_intent_id=intent.id,
        charge_id=charge.id,
        amount_minor=charge.amount_minor,
        currency=charge.currency,
        card=charge.card,
        at=now,
        customer_id=charge.customer_id,
        email=intent.receipt_email,
        billing_email=_text(card.billing_details.get("email")),
        metadata=dict(intent.metadata),
        test_id=card.test_id,
        off_session=authentication.off_session,
        three_d_secure_authenticated=authentication.authenticated,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
