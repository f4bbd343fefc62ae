"""What the vault keeps about a card, what it records about every access, and what it sends."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Final

from remit.core.secrets import Secret
from remit.vault.cards import Brand, Funding
from remit.vault.crypto import FingerprintScope, SealedCard


@dataclass(frozen=True)
class CardSummary:
    """The non-sensitive details: all any other part of remit ever learns about a card."""

    brand: Brand
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str
    funding: Funding
    country: str


@dataclass(frozen=True)
class StoredCard:
    token: str
    account_id: str
    livemode: bool
    sealed: SealedCard
    summary: CardSummary
    billing_details: Mapping[str, object]
    created_at: datetime
    cvc_expires_at: datetime | None = None
    deleted_at: datetime | None = None
    # Whose fingerprints `summary.fingerprint` is comparable with: the account's alone, but for
    # a card stored before vault migration 0010 and not re-fingerprinted yet.
    fingerprint_scope: FingerprintScope = FingerprintScope.ACCOUNT

    def cvc_held(self, now: datetime) -> bool:
        """A CVC is usable until its first authorization or its expiry, whichever is first."""
        return (
            self.sealed.cvc_ciphertext is not None
            and self.cvc_expires_at is not None
            and now < self.cvc_expires_at
        )


class AuditAction(Enum):
    TOKENIZE = "tokenize"
    # Recorded only when refused (a card whose seals do not name its row's account): resolving
    # a test id decrypts nothing and hands out no cardholder data (a public test number's
    # token and details), and the first resolution, which seals the number, is recorded as
    # TOKENIZE. Recording every resolution would add a database write to every test-card
    # payment for nothing PCI DSS 10.2 asks for.
    RESOLVE_TEST_CARD = "resolve_test_card"
    GET_DETAILS = "get_details"
    FORWARD = "forward"
    DELETE = "delete"
    ROTATE_KEY = "rotate_key"
    REWRAP = "rewrap"
    SET_MINIMUM_VERSION = "set_minimum_version"
    LIST_CARDS = "list_cards"
    REMOVE_KEY_VERSION = "remove_key_version"
    CREATE_CVC_KEY = "create_cvc_key"
    DESTROY_CVC_KEY = "destroy_cvc_key"
    # A card opened and sealed anew under a fresh data key, bound to its account and metadata.
    RESEAL = "reseal"
    # The CVC a forward took, put back (or not) after the destination refused the forward
    # before carrying it out; named by the forward's reference.
    PUT_BACK_CVC = "put_back_cvc"
    # A card's expiry or billing details changed, and the card re-sealed under its new
    # metadata in the same transaction (or the change refused).
    UPDATE_DETAILS = "update_details"
    # A key version missing from the key ring declared lost for good (or the declaration
    # refused); the version is the event's key version.
    DECLARE_KEY_VERSION_LOST = "declare_key_version_lost"
    # A batch of an account's cards whose held fingerprints were checked against their own
    # (`remit.vault.fingerprint_checks`): one event per batch, counting each answer and naming
    # the first few cards opened for it, as a listing's left-out cards are.
    CHECK_FINGERPRINTS = "check_fingerprints"


@dataclass(frozen=True)
class LostKeyVersion:
    """A key version an operator declared lost for good: who, and when."""

    version: int
    declared_by: str
    declared_at: datetime


@dataclass(frozen=True)
class KeyVersionDeclaredLost:
    """A declaration's answer: the declaration as first recorded, whether this call made it,
    and how many cards not deleted are under that version."""

    declared: LostKeyVersion
    newly_declared: bool
    cards: int


@dataclass(frozen=True)
class ListedCard:
    """A stored card as a listing shows it: which token, whose, since when. No card data."""

    token: str
    account_id: str
    created_at: datetime


# The longest requester and purpose an audit event keeps as told (what the services send is far
# shorter: `core`, `payment_intent.confirm pi_...`, `cli:USER@HOST`): a longer one is refused,
# never cut, so that the record says what the caller said or nothing.
MAX_TOLD_LENGTH: Final = 200


@dataclass(frozen=True)
class AuditEvent:
    """Who touched which card, when, why, and whether it worked. Never any card data."""

    id: str
    created_at: datetime
    action: AuditAction
    requester: str
    purpose: str
    succeeded: bool
    token: str = ""
    account_id: str = ""
    destination: str = ""
    reference: str = ""
    key_version: int = 0


@dataclass(frozen=True)
class StoredCredential:
    """How an authorization relates to a card the merchant keeps, passed to the destination
    as it is (remit_api.acquirer.v1.AuthorizeRequest): an off-session payment, the cardholder's
    agreement to them, or the setup an off-session payment relies on."""

    off_session: bool = False
    setup_off_session: bool = False
    initial_network_transaction_id: str | None = None


@dataclass(frozen=True)
class ForwardRequest:
    """An authorization the caller wants sent with the card it names."""

    destination: str
    amount_minor: int
    currency: str
    reference: str
    capture: bool
    purpose: str
    requester: str
    billing_address: Mapping[str, str] | None = None
    three_d_secure_authenticated: bool = False
    stored_credential: StoredCredential = StoredCredential()


@dataclass(frozen=True)
class OutboundAuthorization:
    """What leaves the vault towards an allowlisted destination: the only plaintext exit."""

    reference: str
    merchant_id: str
    card_number: Secret[str]
    exp_month: int
    exp_year: int
    cvc: Secret[str] | None
    amount_minor: int
    currency: str
    capture: bool
    billing_address: Mapping[str, str] = field(default_factory=dict)
    three_d_secure_authenticated: bool = False
    stored_credential: StoredCredential = StoredCredential()


@dataclass(frozen=True)
class KeyVersionStatus:
    version: int
    created_at: datetime
    data_key_count: int


@dataclass(frozen=True)
class KeyStatus:
    current_version: int
    minimum_decryption_version: int
    versions: list[KeyVersionStatus]
    # Cards not deleted still sealed in a format before the newest (`SealFormat`), under the
    # data key they were first sealed under, or whose fingerprint is of the one key every
    # account shared (`FingerprintScope.PLATFORM`): what the background re-seal has left.
    cards_to_reseal: int = 0


@dataclass(frozen=True)
class AuditFilter:
    limit: int = 10
    starting_after: str | None = None
    ending_before: str | None = None
    account_id: str | None = None
    token: str | None = None
    requester: str | None = None
    action: AuditAction | None = None
    created_gte: datetime | None = None
    created_gt: datetime | None = None
    created_lte: datetime | None = None
    created_lt: datetime | None = None
