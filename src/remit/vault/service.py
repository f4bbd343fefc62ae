"""Vault use cases. Each public method is one unit of work (or a few, around network calls).

Plaintext exists only in memory, inside `Secret`, between a decryption and the call that needs
it; it is never logged, stored or put in an error. Every decryption is audited before the
plaintext leaves this process.

A unit of work that is one statement runs on an autocommit connection (`_statement`): the
statement is its own transaction, so it needs no BEGIN or COMMIT round trip, and it never ends
in a ROLLBACK (which would make psycopg drop the connection's prepared statements). Those
connections come from the engine's direct pool (`remit.storage.direct`), whose connections
stay in autocommit; every other unit of work is a transaction on the engine.
"""

import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final, TypeGuard

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import Clock, SystemClock
from remit.core.errors import ErrorKind, RemitError, invalid
from remit.core.ids import new_id
from remit.core.secrets import Secret
from remit.grpcutil.deadlines import has_time_for
from remit.grpcutil.forward_in_flight import forward_in_flight
from remit.grpcutil.send_time import acquirer_call_needs_s, not_sent_for_lack_of_time
from remit.grpcutil.unstarted import UnstartedRefusalError
from remit.storage.engine import single_statement
from remit.vault.card_metadata import card_metadata, metadata_digest
from remit.vault.cards import MAX_YEARS_AHEAD, Funding, validate_card
from remit.vault.crypto import (
    KEY_RETIRED_CODE,
    CardBinding,
    CvcKey,
    FingerprintScope,
    KeyRing,
    KeyUnavailableError,
    SealFormat,
    VaultCryptoError,
    cvc_key_hour,
    cvc_key_hour_start,
    fingerprint,
    open_card,
    open_cvc_under_cvc_key,
    rewrap,
    seal_card,
    seal_cvc,
    sealed_cvc_hour,
    tampered,
    verify_binding,
)
from remit.vault.domain import (
    AuditAction,
    AuditEvent,
    AuditFilter,
    CardSummary,
    ForwardRequest,
    KeyStatus,
    KeyVersionDeclaredLost,
    KeyVersionStatus,
    ListedCard,
    OutboundAuthorization,
    StoredCard,
)
from remit.vault.fingerprint_checks import CheckedFingerprint, FingerprintCheck, check_fingerprint
from remit.vault.forward_replay import request_digest
from remit.vault.forwarding import Destination
from remit.vault.forwards_in_flight import forward_may_still_commit_for
from remit.vault.keystore import (
    KEYS_ENV,
    KeyStore,
    KeyStoreError,
    destroy_cvc_keys,
    ensure_cvc_keys,
)
from remit.vault.lost_keys import (
    declaration_note,
    declaration_refusal,
    declared_missing,
    lost_key,
)
from remit.vault.repository import SqlVaultRepository, TakenCvc
from remit.vault.test_cards import known_test_number, test_card_for
from remit.vault.test_numbers import card_test_id
from remit_api.vault.v1 import vault_pb2

log = logging.getLogger(__name__)

CVC_RETENTION: Final = timedelta(hours=1)
# A CVC key is deleted this long after the last CVC it can have sealed expired: room for the
# clocks of vault processes sharing it to differ, and for a forward that read the card just
# before its CVC expired to open it.
CVC_KEY_GRACE: Final = timedelta(minutes=5)
DEFAULT_REWRAP_BATCH: Final = 500
MAX_REWRAP_BATCH: Final = 5000
# Of the data keys a re-wrap could not unwrap, how many its one log line names.
NAMED_REWRAP_FAILURES: Final = 3
# Each card is re-sealed in a transaction of its own; a page is how many are listed at once.
DEFAULT_RESEAL_BATCH: Final = 100
MAX_RESEAL_BATCH: Final = 1000
TEST_CARD_YEARS_AHEAD: Final = 5
MAX_CARD_LISTING: Final = 1000
# The most cards one fingerprint check takes (`VaultService.check_fingerprints`).
MAX_FINGERPRINT_CHECKS: Final = 500
# A listing call reads at most this many cards per card it may list (its `limit`), however
# many it leaves out, and names at most `NAMED_LEFT_OUT` of those in its audit and log.
SCANNED_PER_LISTED: Final = 10
NAMED_LEFT_OUT: Final = 5
# The code of a refused update of a test id's card (`update_card_details`).
TEST_CARD_SHARED: Final = "vault_test_card_shared"


class VaultError(RemitError):
    """Root of the errors the vault service raises."""


@dataclass(frozen=True)
class CardListing:
    """A page of `VaultService.list_cards_created_before`: the cards listed, whether more
    follow, and the last card read (listed or left out), where the next page starts."""

    cards: list[ListedCard]
    has_more: bool
    scanned_through: ListedCard | None


@dataclass
class _ListingScan:
    listed: list[ListedCard] = field(default_factory=list)
    unbound: list[ListedCard] = field(default_factory=list)
    unchecked: list[tuple[ListedCard, KeyUnavailableError]] = field(default_factory=list)
    scanned_through: ListedCard | None = None
    has_more: bool = False


def _first_tokens(tokens: list[str]) -> str:
    """The first few of `tokens`, and how many more, for a log line or an audit event."""
    named = ", ".join(tokens[:NAMED_LEFT_OUT])
    more = len(tokens) - NAMED_LEFT_OUT
    return f"{named} and {more} more" if more > 0 else named


def removal_refusal(ring: KeyRing, version: int, live_data_keys: int) -> VaultError | None:
    """Why key version `version` may not be removed from `ring`, if it may not:
    `live_data_keys` cards not deleted still have their data key wrapped under it."""
    if version not in ring.versions:
        return VaultError(
            message=f"The vault's key file has no key version {version}.",
            kind=ErrorKind.NOT_FOUND,
            code="resource_missing",
            param="version",
        )
    if version == ring.current_version:
        return VaultError(
            message=f"Key version {version} is the current version, which wraps new data keys; "
            "it cannot be removed.",
            kind=ErrorKind.FAILED_PRECONDITION,
            param="version",
        )
    if version >= ring.minimum_decryption_version:
        return VaultError(
            message=f"Key version {version} is not retired (the minimum decryption version is "
            f"{ring.minimum_decryption_version}); retire it first.",
            kind=ErrorKind.FAILED_PRECONDITION,
            param="version",
        )
    if live_data_keys:
        return VaultError(
            message=f"{live_data_keys} cards still have their data key wrapped under key "
            f"version {version}; removing it would make them unreadable. Lower the minimum "
            f"decryption version to {version}, re-wrap them and retire it again first.",
            kind=ErrorKind.FAILED_PRECONDITION,
            param="version",
        )
    return None


def _unchecked(purpose: str, error: KeyUnavailableError) -> str:
    """The audited purpose of a card's access whose binding could not be checked, as its key
    version is not available here: neither a checked read nor tampering."""
    return (
        f"{purpose}: binding not checked, key {error.key_name!r} version {error.key_version} "
        f"unavailable ({error.code})"
    )


def _unreadable(token: str, error: KeyUnavailableError) -> VaultError:
    """A read of a card's details refused for want of its key version: a precondition, under
    the key error's own code, as a deletion (`_undeletable`). Nothing of the card is in it."""
    return VaultError(
        message=f"The card {token} was not read: its data key is wrapped under key "
        f"{error.key_name!r} version {error.key_version}, which this vault cannot use "
        f"({error.code}), so whose card it is cannot be checked. Restore that key version to "
        "read it." + declaration_note(error),
        kind=ErrorKind.FAILED_PRECONDITION,
        error_type="api_error",
        code=error.code,
    )


def _undeletable(token: str, error: KeyUnavailableError) -> VaultError:
    """A deletion refused for want of the card's key version: a precondition, under the key
    error's own code (`vault_key_missing`, `vault_key_retired`) as a forward of the card
    reports it, never as tampering."""
    return VaultError(
        message=f"The card {token} was not deleted: its data key is wrapped under key "
        f"{error.key_name!r} version {error.key_version}, which this vault cannot use "
        f"({error.code}), so whose card it is cannot be checked. Restore that key version to "
        "delete it." + declaration_note(error),
        kind=ErrorKind.FAILED_PRECONDITION,
        error_type="api_error",
        code=error.code,
    )


def _unforwardable(token: str, error: KeyUnavailableError) -> VaultError:
    """A forward refused for want of the card's key version, found when opening the card,
    before its CVC is taken: a precondition under the key error's own code, as a read
    (`_unreadable`) and a deletion. The caller must know nothing was sent: a key version
    missing here (`vault_key_missing`: a vault process whose key file lags a rotation, a key
    version removed too early) is no unknown outcome at the network, to be looked up and
    counted against its health, as an INTERNAL status would have the core take it."""
    return VaultError(
        message=f"The card {token} was not forwarded, and nothing was sent: its data key is "
        f"wrapped under key {error.key_name!r} version {error.key_version}, which this vault "
        f"cannot use ({error.code})." + declaration_note(error),
        kind=ErrorKind.FAILED_PRECONDITION,
        error_type="api_error",
        code=error.code,
    )


def _check_retirement(ring: KeyRing, minimum: int, behind: int) -> None:
    """Refuse to retire the key versions of `ring` below `minimum` when it is out of range or
    `behind` data keys of cards not deleted are still wrapped under one of them."""
    if not 1 <= minimum <= ring.current_version:
        raise invalid(
            f"minimum_version must be between 1 and the current version {ring.current_version}.",
            "minimum_version",
        )
    if behind:
        raise VaultError(
            message=f"{behind} data keys are still wrapped with key versions older than "
            f"{minimum}; re-wrap them first.",
            kind=ErrorKind.FAILED_PRECONDITION,
            param="minimum_version",
        )


def _live_card_of(card: StoredCard | None, account_id: str) -> TypeGuard[StoredCard]:
    """The card exists, belongs to the account and was not deleted: the only cards an account
    may use (any other token is answered as if it did not exist)."""
    return card is not None and card.account_id == account_id and card.deleted_at is None


def _shared_test_card(token: str) -> VaultError:
    """A test id's card is every payment method's of the account made of that test id: one
    of them changing its expiry or billing details must not change the others'."""
    return VaultError(
        message=f"The vault token '{token}' is a test id's card, shared by every payment "
        "method made of that test id: its details are not changed.",
        kind=ErrorKind.FAILED_PRECONDITION,
        code=TEST_CARD_SHARED,
        param="vault_token",
    )


def _no_such_token(token: str, param: str = "vault_token") -> VaultError:
    return VaultError(
        message=f"No such vault token: '{token}'",
        kind=ErrorKind.NOT_FOUND,
        code="resource_missing",
        param=param,
    )


def reference_reused(reference: str) -> VaultError:
    """A forward whose reference was recorded for another operation (other parameters, see
    `remit.vault.forward_replay`). Named as the acquirer names the same mistake, with its
    status and code, so that a caller reads one answer whichever of the two caught it (the
    acquirer does when the first forward's answer is not recorded yet).

    FAILED_PRECONDITION rather than ALREADY_EXISTS: the forward creates nothing the caller
    named; it is well formed, but the state of the reference forbids it, and repeating it
    unchanged can never succeed. The message names the reference only: no card data, and not
    even the token, which may be another account's."""
    return VaultError(
        message=f"The reference '{reference}' was already forwarded with other parameters; a "
        "retry must repeat the card, destination, amount, currency, capture, 3-D Secure and "
        "stored-credential fields of the first forward.",
        kind=ErrorKind.FAILED_PRECONDITION,
        error_type="idempotency_error",
        code="reference_reused",
        param="reference",
    )


def _forward_refusal(request: ForwardRequest, *, allowed: bool) -> RemitError | None:
    """Why the forward is refused whatever the card, if it is."""
    if not allowed:
        return VaultError(
            message=f"Destination '{request.destination}' is not on the vault's forwarding "
            "allowlist.",
            kind=ErrorKind.PERMISSION_DENIED,
            code="destination_not_allowed",
            param="destination",
        )
    if not request.reference:
        return invalid("A forwarded authorization needs a reference.", "reference")
    if request.amount_minor < 1:
        return invalid("amount must be at least 1.", "amount")
    if not request.purpose:
        return invalid("Say why the card is decrypted: purpose is required.", "purpose")
    return None


@dataclass(frozen=True)
class Tokenized:
    token: str
    summary: CardSummary
    # Whose fingerprint `summary.fingerprint` is (`StoredCard.fingerprint_scope`).
    fingerprint_scope: FingerprintScope


@dataclass(frozen=True)
class CardDetails:
    summary: CardSummary
    cvc_present: bool
    billing_details: Mapping[str, object]
    # Whose fingerprint `summary.fingerprint` is (`StoredCard.fingerprint_scope`).
    fingerprint_scope: FingerprintScope
    # The Stripe test id the card's number stands for (test mode only; `test_numbers`).
    test_id: str | None = None


@dataclass(frozen=True)
class UpdatedCard:
    """A card's details after an update, and whether the update changed them."""

    summary: CardSummary
    billing_details: Mapping[str, object]
    changed: bool
    # Whose fingerprint `summary.fingerprint` is (`StoredCard.fingerprint_scope`).
    fingerprint_scope: FingerprintScope


@dataclass(frozen=True)
class NewCardDetails:
    """What an update sets on a card: its expiry (month, four-digit year), its billing
    details (whole), or both; None keeps the card's."""

    expiry: tuple[int, int] | None = None
    billing_details: Mapping[str, object] | None = None

    def check(self, now: datetime, held: tuple[int, int]) -> None:
        """Refuse an expiry no card can have (INVALID_ARGUMENT, naming the field): a month
        outside 1-12, or a month and year already past or too far ahead, as tokenizing does.
        The expiry the card holds (`held`) is not checked again: a caller changing only the
        billing details of a card that has since expired sends it back as it is."""
        if self.expiry is None or self.expiry == held:
            return
        month, year = self.expiry
        if not 1 <= month <= 12:
            raise invalid(
                "The expiry month must be between 1 and 12.", "exp_month", "invalid_expiry_month"
            )
        if not now.year <= year <= now.year + MAX_YEARS_AHEAD:
            raise invalid(
                f"The expiry year must be between {now.year} and {now.year + MAX_YEARS_AHEAD}.",
                "exp_year", "invalid_expiry_year",
            )  # fmt: skip
        if (year, month) < (now.year, now.month):
            raise invalid("The expiry is in the past.", "exp_month", "invalid_expiry_month")

    def applied_to(self, card: StoredCard) -> StoredCard:
        summary = card.summary
        if self.expiry is not None:
            summary = replace(summary, exp_month=self.expiry[0], exp_year=self.expiry[1])
        billing = card.billing_details
        if self.billing_details is not None:
            billing = dict(self.billing_details)
        return replace(card, summary=summary, billing_details=billing)


def _as_taken(card: StoredCard, taken: TakenCvc) -> StoredCard:
    """`card` with the expiry, billing details and fingerprint its row held when a forward took
    its CVC."""
    summary = replace(
        card.summary,
        exp_month=taken.exp_month,
        exp_year=taken.exp_year,
        fingerprint=taken.fingerprint,
    )
    if summary == card.summary and _same_json(taken.billing_details, card.billing_details):
        return card
    return replace(card, summary=summary, billing_details=dict(taken.billing_details))


def _details_taken_unchecked(card: StoredCard, taken: TakenCvc) -> bool:
    """Whether the expiry and billing details (or fingerprint) a forward's CVC was taken with
    would reach the acquirer without a seal having checked them. A forward sends the card as
    its CVC was taken (`_as_taken`) only when the CVC taken is not the one it read: that CVC is
    opened under those details, which its seal binds. The one it read was opened under the
    details read, so other details with it were written around the vault (an update re-seals
    the CVC with them), as were a CVC whose seal binds no details taken from a card whose
    seals did (a re-seal never goes back to an older format). Either is tampering; the CVC
    taken stays destroyed, as a card whose seals fail keeps nothing for a retry."""
    if taken.sealed == card.sealed.cvc_ciphertext:
        return _as_taken(card, taken) is not card
    return (
        card.sealed.seal_format is SealFormat.METADATA_BOUND
        and taken.seal_format is not SealFormat.METADATA_BOUND
    )


def _details_purpose(new: NewCardDetails) -> str:
    """What an update changed, for its audit event: the names of the fields, never values."""
    changed = [
        name
        for name, given in (("expiry", new.expiry), ("billing_details", new.billing_details))
        if given is not None
    ]
    return "update_details: " + ", ".join(changed)


def _same_json(left: Mapping[str, object], right: Mapping[str, object]) -> bool:
    """Whether two billing details are the same JSON document, as the database keeps them."""
    return json.dumps(left, sort_keys=True) == json.dumps(right, sort_keys=True)


@dataclass(frozen=True)
class Forwarded:
    result: vault_pb2.ForwardedAuthorization
    replayed: bool


@dataclass(frozen=True)
class CvcKeyChanges:
    """The hours whose CVC keys one round of `maintain_cvc_keys` created and destroyed."""

    created: list[int]
    destroyed: list[int]


@dataclass(frozen=True)
class RewrapProgress:
    rewrapped: int
    remaining: int
    key_version: int


@dataclass(frozen=True)
class _RewrapPage:
    progress: RewrapProgress
    # The data keys that did not unwrap: (token, error code).
    failed: list[tuple[str, str]]
    # The last card read, (key version, token): where the next page starts.
    last: tuple[int, str] | None
    # As many cards as were asked for: more may follow.
    full: bool


@dataclass(frozen=True)
class ResealProgress:
    resealed: int
    # Cards not deleted still sealed in a format before the newest.
    remaining: int


@dataclass(frozen=True)
class _ResealPage:
    resealed: int
    # The cards that did not open: (token, error code).
    failed: list[tuple[str, str]]
    # The last token listed: where the next page starts.
    last: str | None
    full: bool


def _log_reseal_failures(failed: list[tuple[str, str]]) -> None:
    """One line for all the cards a re-seal pass could not open, naming a few."""
    if not failed:
        return
    named = ", ".join(f"{token} ({code})" for token, code in failed[:NAMED_REWRAP_FAILURES])
    more = len(failed) - NAMED_REWRAP_FAILURES
    log.error(
        "could not re-seal %d cards: %s%s; they stay sealed as they were, under their data key",
        len(failed), named, f" and {more} more" if more > 0 else "",
    )  # fmt: skip


def _log_rewrap_failures(failed: list[tuple[str, str]], key_version: int) -> None:
    """One line for all the data keys a re-wrap could not unwrap, naming a few."""
    if not failed:
        return
    named = ", ".join(f"{token} ({code})" for token, code in failed[:NAMED_REWRAP_FAILURES])
    more = len(failed) - NAMED_REWRAP_FAILURES
    log.error(
        "could not re-wrap %d data keys under key version %d: %s%s; they stay wrapped under "
        "their older versions, which must stay allowed",
        len(failed), key_version, named, f" and {more} more" if more > 0 else "",
    )  # fmt: skip


class VaultService:
    def __init__(
        self,
        engine: AsyncEngine,
        keys: KeyStore,
        destinations: Mapping[str, Destination],
        clock: Clock | None = None,
        cvc_retention: timedelta = CVC_RETENTION,
    ) -> None:
        self._engine = engine
        self._keys = keys
        self._destinations = dict(destinations)
        self._clock = clock or SystemClock()
        self._cvc_retention = cvc_retention
        # The key versions (name, version, why) already logged as unavailable for a binding
        # check: logged once each, not once per card wrapped under them.
        self._unavailable_keys_logged: set[tuple[str, int, str | None]] = set()

    @asynccontextmanager
    async def _statement(self) -> AsyncIterator[SqlVaultRepository]:
        """A repository whose every statement commits on its own, for one-statement units."""
        async with single_statement(self._engine) as connection:
            yield SqlVaultRepository(connection)

    # --- storing cards -----------------------------------------------------------------

    async def tokenize(
        self,
        account_id: str,
        number: Secret[str],
        exp_month: int,
        exp_year: int,
        cvc: Secret[str] | None,
        *,
        billing_details: Mapping[str, object] | None = None,
        requester: str,
        livemode: bool = False,
    ) -> Tokenized:
        now = self._clock.now()
        card = validate_card(number, exp_month, exp_year, cvc, now=now)
        token = new_id("vtok")
        known = known_test_number(card.number)
        async with self._engine.begin() as db:
            repo = SqlVaultRepository(db)
            # The ring is read under the key ring's lock: a ring read before it could name a
            # version that has been retired or removed since, and the card would be stored
            # under a key no vault can unwrap with.
            await repo.hold_key_ring_shared()
            ring = self._keys.load()
            cvc_key, created = (
                (None, []) if card.cvc is None else self._cvc_key(ring, cvc_key_hour(now), now)
            )
            summary = CardSummary(
                brand=card.brand,
                last4=card.last4,
                exp_month=card.exp_month,
                exp_year=card.exp_year,
                # The account's own: the same card in another account has another.
                fingerprint=fingerprint(ring, account_id, card.number),
                funding=known.funding if known else Funding.UNKNOWN,
                country=known.country if known else "",
            )
            billing = dict(billing_details or {})
            # Bound into the seals: a later change to any of these columns is tampering.
            metadata = metadata_digest(
                livemode=livemode, summary=summary, billing_details=billing, created_at=now
            )
            stored = StoredCard(
                token=token,
                account_id=account_id,
                livemode=livemode,
                sealed=seal_card(
                    ring, token, account_id, card.number, card.cvc, cvc_key, metadata=metadata
                ),
                summary=summary,
                billing_details=billing,
                created_at=now,
                cvc_expires_at=None if card.cvc is None else now + self._cvc_retention,
                fingerprint_scope=FingerprintScope.ACCOUNT,
            )
            await repo.insert_card(stored)
            await repo.insert_audit_event(
                self._event(AuditAction.TOKENIZE, requester, "tokenize", stored)
            )
        for hour in created:
            await self._audit(self._cvc_key_event(AuditAction.CREATE_CVC_KEY, requester, hour))
        return Tokenized(token, summary, stored.fingerprint_scope)

    def _cvc_key(self, ring: KeyRing, hour: int, now: datetime) -> tuple[CvcKey, list[int]]:
        """The CVC key of `hour` (a CVC stored at `now` is sealed under `now`'s), and the hours
        whose keys this made.
        The ring is the key file's as cached (`KeyStore.load`), so this costs nothing while
        the hour's key is in it, as it is from the hour before on (`maintain_cvc_keys`); else
        it is made here, once, and other vault processes find it in the file.

        The key file's lock is taken with this transaction's shared hold on the key ring's:
        that is safe, as no one who holds the file's lock waits for anything."""
        key = ring.cvc_keys.get(hour)
        if key is not None:
            return key, []
        ring, created = ensure_cvc_keys(self._keys, [hour], now)
        return ring.cvc_keys[hour], created

    async def resolve_test_card(
        self, account_id: str, test_id: str, *, requester: str
    ) -> Tokenized:
        test_card = test_card_for(test_id)
        if test_card is None:
            raise VaultError(
                message=f"No such test card: '{test_id}'",
                kind=ErrorKind.NOT_FOUND,
                code="resource_missing",
                param="test_id",
            )
        async with self._statement() as repo:
            existing = await repo.test_card(account_id, test_id)
        stale: str | None = None
        if existing is not None:
            token, found = existing
            if _live_card_of(found, account_id):
                await self._check_binding(
                    found, AuditAction.RESOLVE_TEST_CARD, requester, f"resolve {test_id}"
                )
                return Tokenized(token, found.summary, found.fingerprint_scope)
            # The test id's card was deleted through the admin API: the test id still names
            # a card, so a new token takes the old one's place.
            stale = token
        now = self._clock.now()
        created = await self.tokenize(
            account_id,
            test_card.number,
            12,
            now.year + TEST_CARD_YEARS_AHEAD,
            None,
            requester=requester,
        )
        async with self._engine.begin() as db:
            repo = SqlVaultRepository(db)
            won = await repo.claim_test_card_token(
                account_id, test_id, created.token, replacing=stale
            )
            winner = created.token if won else await repo.test_card_token(account_id, test_id)
            if not won:
                await self._shred_unclaimed(repo, created.token, test_id, requester, now)
        assert winner is not None
        card = await self._card(account_id, winner)
        # A resolution is audited only when it is refused (`_check_binding`).
        await self._check_binding(
            card, AuditAction.RESOLVE_TEST_CARD, requester, f"resolve {test_id}"
        )
        return Tokenized(winner, card.summary, card.fingerprint_scope)

    async def _shred_unclaimed(
        self, repo: SqlVaultRepository, token: str, test_id: str, requester: str, now: datetime
    ) -> None:
        """Delete the card a concurrent first resolution of `test_id` stored in vain (another
        card won the test id), audited like any deletion: its tokenization was."""
        card = await repo.get_card(token, for_update=True)
        if card is not None:
            await self._shred(repo, card, requester, f"delete: {test_id} has another card", now)

    async def _shred(
        self, repo: SqlVaultRepository, card: StoredCard, requester: str, purpose: str,
        now: datetime,
    ) -> bool:  # fmt: skip
        """Shred `card` (locked by the caller) and audit it as a deletion; False if it was
        shredded already."""
        if card.deleted_at is not None:
            return False
        await repo.shred_card(card.token, now)
        await repo.insert_audit_event(self._event(AuditAction.DELETE, requester, purpose, card))
        return True

    async def card_details(self, account_id: str, token: str, *, requester: str) -> CardDetails:
        """The card's public details; the look-up is audited whether it is granted or not."""
        async with self._statement() as repo:
            found = await repo.get_card(token)
        card = found if _live_card_of(found, account_id) else None
        if card is None:
            await self._audit(
                self._refusal(AuditAction.GET_DETAILS, requester, "get_details", token, account_id)
            )
            raise _no_such_token(token)
        await self._check_binding(card, AuditAction.GET_DETAILS, requester, "get_details")
        await self._audit(self._event(AuditAction.GET_DETAILS, requester, "get_details", card))
        return CardDetails(
            summary=card.summary,
            cvc_present=card.cvc_held(self._clock.now()),
            billing_details=card.billing_details,
            fingerprint_scope=card.fingerprint_scope,
            test_id=card_test_id(self._keys.load(), card),
        )

    async def _check_binding(
        self, card: StoredCard, action: AuditAction, requester: str, purpose: str
    ) -> None:
        """Refuse the card's details (brand, last4, fingerprint, expiry, billing details: kept
        in plain columns) unless its seals name its row's token, account and metadata
        (`remit.vault.card_metadata`), as a forward refuses to open it: a row given to another
        account, or whose expiry or billing details were swapped with another card's, by a
        write to the vault database is refused as tampered (DATA_LOSS), audited, not answered.
        It costs one unwrap of the data key (`verify_binding`); nothing is decrypted or kept.

        A token-bound card names no account, and an account-bound one no metadata
        (`verify_binding`): what they do not name is not checked until they are re-sealed.

        A card whose key version is not available here (retired or removed from the key ring
        before the card was re-wrapped, by a key file restored or edited by hand, or of another
        ring) cannot be checked: its read is refused too (FAILED_PRECONDITION, under the key
        error's own code, `_unreadable`), audited as unchecked (`_unchecked`), not as
        tampering. The key name and version are plain columns of the row: a write to the vault
        database that gives a card to another account can name an unavailable key version in
        the same update, so answering such a card from its plain columns would hand that
        account the card's details unchecked. It is logged as `_log_unavailable_key` says."""
        error = self._binding_error(card)
        if isinstance(error, KeyUnavailableError):
            self._log_unavailable_key(error, card.token)
            error = await self._as_declared(error)
            await self._audit(
                self._event(action, requester, _unchecked(purpose, error), card, succeeded=False)
            )
            raise _unreadable(card.token, error)
        if error is not None:
            await self._refuse_unbound(card, action, requester, purpose)
            raise error

    def _log_unavailable_key(self, error: KeyUnavailableError, token: str) -> None:
        """Log a card's key version as unavailable: once per key version when the ring had it
        (retired, or removed before the card was re-wrapped), but at error level for every
        card naming one the ring never had (`KeyRing.never_had`), which no key removal
        produces: a card of another vault, or a row written by hand."""
        if self._keys.load().never_had(error.key_name, error.key_version):
            log.error(
                "card %s names key %r version %d, which this vault's key ring never had (%s): "
                "its row was not written by this vault, or was changed by hand; it is refused",
                token, error.key_name, error.key_version, error.code,
            )  # fmt: skip
            return
        seen = (error.key_name, error.key_version, error.code)
        if seen in self._unavailable_keys_logged:
            return
        self._unavailable_keys_logged.add(seen)
        log.warning(
            "key %r version %d is unavailable (%s): the binding of cards wrapped under it to "
            "their accounts cannot be checked. Their details and deletion are refused and "
            "listings leave them out until the key version is back",
            error.key_name, error.key_version, error.code,
        )  # fmt: skip

    def _binding_error(self, card: StoredCard) -> VaultCryptoError | None:
        """Why the card's seals do not name its row's token and account, if they do not."""
        try:
            verify_binding(
                self._keys.load(), card.token, card.account_id, card.sealed,
                metadata=card_metadata(card),
            )  # fmt: skip
        except VaultCryptoError as error:
            return error
        return None

    async def _refuse_unbound(
        self, card: StoredCard, action: AuditAction, requester: str, purpose: str
    ) -> None:
        log.error("card %s failed its binding check for %s", card.token, purpose)
        await self._audit(self._event(action, requester, purpose, card, succeeded=False))

    async def delete_card(self, account_id: str, token: str, *, requester: str) -> bool:
        """Shred the account's card. A row given to the account by a write to the vault
        database is refused as the reads refuse it (`_check_binding`): shredding it would
        destroy another account's card, and the evidence of the write with it.

        A card whose key version is not available here is refused too (FAILED_PRECONDITION,
        naming the key version), as the reads refuse it: a shredding cannot be undone, so one
        whose row may name the wrong account waits until its binding can be checked."""
        now = self._clock.now()
        unbound: tuple[StoredCard, VaultCryptoError] | None = None
        async with self._engine.begin() as db:
            repo = SqlVaultRepository(db)
            card = await repo.get_card(token, for_update=True)
            if card is not None and card.account_id == account_id:
                # A shredded card has no data key left to check; it is not shredded again.
                error = None if card.deleted_at is not None else self._binding_error(card)
                if error is None:
                    return await self._shred(repo, card, requester, "delete", now)
                unbound = (card, error)
        if unbound is not None:
            # Audited once the row's lock is released, on a connection of its own.
            card, error = unbound
            if isinstance(error, KeyUnavailableError):
                self._log_unavailable_key(error, card.token)
                error = await self._as_declared(error)
                await self._audit(
                    self._event(
                        AuditAction.DELETE, requester, _unchecked("delete refused", error), card,
                        succeeded=False,
                    )
                )  # fmt: skip
                raise _undeletable(card.token, error)
            await self._refuse_unbound(card, AuditAction.DELETE, requester, "delete")
            raise error
        await self._audit(self._refusal(AuditAction.DELETE, requester, "delete", token, account_id))
        raise _no_such_token(token)

    async def update_card_details(
        self, account_id: str, token: str, new: NewCardDetails, *, requester: str
    ) -> UpdatedCard:
        """Set the account's card's expiry and/or billing details, and re-seal it under its
        new metadata in the same transaction, which holds its row: the seals bind those columns
        (`remit.vault.card_metadata`), so neither is written without the other. As the
        background re-seal does, the card is opened under the binding its row holds now and
        sealed under the new one; a card whose seals do not authenticate is refused as
        tampered (DATA_LOSS, audited) and left as it is, never re-sealed over.

        Idempotent: values the card holds already change nothing (nothing is re-sealed), so a
        caller whose own commit failed after this one may send the same values again. The
        card's binding is checked all the same: a tampered row is not answered.

        A token that names no live card of the account (another account's, a deleted one)
        is NOT_FOUND, as every read answers it, and audited as refused."""
        now = self._clock.now()
        created: list[int] = []
        card: StoredCard | None = None
        answer: UpdatedCard | None = None
        shared = False
        try:
            async with self._engine.begin() as db:
                repo = SqlVaultRepository(db)
                # As in `tokenize`: the version the new data key is wrapped under is not
                # retired or removed before the card is committed.
                await repo.hold_key_ring_shared()
                ring = self._keys.load()
                card = await repo.get_card(token, for_update=True)
                if not _live_card_of(card, account_id):
                    card = None
                elif await repo.is_test_card(account_id, token):
                    shared = True
                else:
                    new.check(now, (card.summary.exp_month, card.summary.exp_year))
                    updated, created = self._resealed_with(ring, card, new, now)
                    if updated is None:
                        # Audited as any look at a card's details is: the answer holds them.
                        purpose, answer = (
                            "update_details: unchanged",
                            UpdatedCard(
                                card.summary,
                                card.billing_details,
                                changed=False,
                                fingerprint_scope=card.fingerprint_scope,
                            ),
                        )
                    else:
                        await repo.save_details_resealed(updated)
                        purpose, answer = (
                            _details_purpose(new),
                            UpdatedCard(
                                updated.summary,
                                updated.billing_details,
                                changed=True,
                                fingerprint_scope=updated.fingerprint_scope,
                            ),
                        )
                    await repo.insert_audit_event(
                        self._event(AuditAction.UPDATE_DETAILS, requester, purpose, updated or card)
                    )
        except KeyUnavailableError as unavailable:
            assert card is not None
            self._log_unavailable_key(unavailable, token)
            error = await self._as_declared(unavailable)
            await self._audit(
                self._event(
                    AuditAction.UPDATE_DETAILS, requester,
                    _unchecked("update_details refused", error), card, succeeded=False,
                )
            )  # fmt: skip
            raise _unreadable(token, error) from None
        except VaultCryptoError:
            assert card is not None
            # Audited once the row's lock is released, on a connection of its own.
            await self._refuse_unbound(
                card, AuditAction.UPDATE_DETAILS, requester, "update_details"
            )
            raise
        if shared:
            assert card is not None
            await self._audit(
                self._event(
                    AuditAction.UPDATE_DETAILS, requester, "update_details: a test id's card",
                    card, succeeded=False,
                )
            )  # fmt: skip
            raise _shared_test_card(token)
        if answer is None:
            await self._audit(
                self._refusal(
                    AuditAction.UPDATE_DETAILS, requester, "update_details", token, account_id
                )
            )
            raise _no_such_token(token)
        for hour in created:
            await self._audit(self._cvc_key_event(AuditAction.CREATE_CVC_KEY, requester, hour))
        return answer

    def _resealed_with(
        self, ring: KeyRing, card: StoredCard, new: NewCardDetails, now: datetime
    ) -> tuple[StoredCard | None, list[int]]:
        """`card` with `new` applied and sealed under its new metadata, and the hours whose
        CVC keys this made; (None, []) if `new` changes nothing. Raises as `open_card` does for
        a card whose seals do not name its row as it is."""
        updated = new.applied_to(card)
        if updated.summary == card.summary and _same_json(
            updated.billing_details, card.billing_details
        ):
            verify_binding(
                ring, card.token, card.account_id, card.sealed, metadata=card_metadata(card)
            )
            return None, []
        opened = open_card(
            ring, card.token, card.account_id, card.sealed, metadata=card_metadata(card)
        )
        cvc = opened.cvc if card.cvc_held(now) else None
        cvc_key: CvcKey | None = None
        created: list[int] = []
        if cvc is not None:
            assert card.sealed.cvc_ciphertext is not None
            assert card.cvc_expires_at is not None
            # Under the key of the hour it was stored in, as a re-seal keeps it: it is deleted
            # as that hour's CVCs expire, not later.
            stored_hour = self._stored_cvc_hour(card.sealed.cvc_ciphertext, card.cvc_expires_at)
            cvc_key, created = self._cvc_key(ring, stored_hour, now)
        sealed = seal_card(
            ring, card.token, card.account_id, opened.number, cvc, cvc_key,
            metadata=card_metadata(updated),
        )  # fmt: skip
        return replace(updated, sealed=sealed), created

    async def list_cards_created_before(
        self, cutoff: datetime, *, limit: int, starting_after: str | None, requester: str
    ) -> CardListing:
        """One page of the cards stored before `cutoff` that may be unreferenced (test ids'
        cards are left out), oldest first; audited as one listing, without its tokens.

        A card whose seals do not name its row's account (a row given to another account by a
        write to the vault database) is left out rather than listed under the account it was
        given to: the sweep would ask that account to delete it, which is refused
        (`delete_card`), and a page it could not finish would hold the sweep there for good.
        Each listed card's binding is checked as a read checks it (one unwrap of its data key,
        a few microseconds: about 2 ms for a page of 500, against the query's own heap reads of
        those rows, which already fetch the columns it needs). A card whose key version is not
        available here is left out as well, as its deletion would be refused (`delete_card`).

        A page is filled from the cards after a left-out one, so a run of them never ends the
        sweep early, but a call reads at most `SCANNED_PER_LISTED` times `limit` cards, `limit`
        per query: a page may come back short, even empty, with more to come, and the listing
        names the last card it read (`CardListing.scanned_through`), left out or not, for the
        next page to start after it. Without that bound a long run of left-out cards would
        take one call past its deadline, rolling its audit back, and the sweep would never
        get past them. The cards left out are audited in one event per call (how many, and
        the first few tokens) and logged in one line (those whose binding fails, and those
        naming a key version the ring never had, `KeyRing.never_had`); a key version the ring
        had is logged once (`_log_unavailable_key`)."""
        if not 1 <= limit <= MAX_CARD_LISTING:
            raise invalid(f"limit must be between 1 and {MAX_CARD_LISTING}.", "limit")
        async with self._engine.begin() as db:
            repo = SqlVaultRepository(db)
            after = None
            if starting_after is not None:
                anchor = await repo.card_created_at(starting_after)
                if anchor is None:
                    raise _no_such_token(starting_after, param="starting_after")
                after = (anchor, starting_after)
            scan = await self._bound_cards_created_before(repo, cutoff, limit=limit, after=after)
            left_out = self._left_out_of_listing(scan, requester)
            if left_out is not None:
                await repo.insert_audit_event(left_out)
            await repo.insert_audit_event(
                AuditEvent(
                    id=new_id("vae"),
                    created_at=self._clock.now(),
                    action=AuditAction.LIST_CARDS,
                    requester=requester,
                    purpose=f"{len(scan.listed)} cards created before {cutoff.isoformat()}",
                    succeeded=True,
                )
            )
        return CardListing(scan.listed, scan.has_more, scan.scanned_through)

    def _left_out_of_listing(self, scan: "_ListingScan", requester: str) -> AuditEvent | None:
        """Log the cards a listing left out, and the one audit event that sums them up."""
        if not scan.unbound and not scan.unchecked:
            return None
        ring = self._keys.load()
        never_had: list[str] = []
        for card, error in scan.unchecked:
            if ring.never_had(error.key_name, error.key_version):
                never_had.append(card.token)
            else:
                self._log_unavailable_key(error, card.token)
        unbound = [card.token for card in scan.unbound]
        if unbound or never_had:
            log.error(
                "a listing left out %d cards that failed their binding check (%s) and %d "
                "naming a key version this vault's key ring never had (%s)",
                len(unbound), _first_tokens(unbound), len(never_had), _first_tokens(never_had),
            )  # fmt: skip
        unchecked = [card.token for card, _ in scan.unchecked]
        codes = ", ".join(sorted({error.code or "" for _, error in scan.unchecked}))
        parts = []
        if unbound:
            named = _first_tokens(unbound)
            parts.append(
                f"{len(unbound)} whose seals do not name their account and metadata ({named})"
            )
        if unchecked:
            parts.append(
                f"{len(unchecked)} whose binding was not checked, key unavailable ({codes}) "
                f"({_first_tokens(unchecked)})"
            )
        return AuditEvent(
            id=new_id("vae"),
            created_at=self._clock.now(),
            action=AuditAction.LIST_CARDS,
            requester=requester,
            purpose=f"left out of a listing: {'; '.join(parts)}",
            succeeded=False,
        )

    async def _bound_cards_created_before(
        self, repo: SqlVaultRepository, cutoff: datetime, *, limit: int,
        after: tuple[datetime, str] | None,
    ) -> "_ListingScan":  # fmt: skip
        """Up to `limit` cards of `live_cards_created_before` whose binding holds, reading at
        most `SCANNED_PER_LISTED * limit` cards, `limit` per query; those read on the way
        whose binding does not hold or could not be checked; the last card read; and whether
        more cards follow it."""
        ring = self._keys.load()
        scan = _ListingScan()
        most = SCANNED_PER_LISTED * limit
        scanned = 0
        while True:
            page, has_more = await repo.live_cards_created_before(cutoff, limit=limit, after=after)
            for index, (card, sealed, metadata) in enumerate(page):
                scanned += 1
                scan.scanned_through = card
                try:
                    verify_binding(ring, card.token, card.account_id, sealed, metadata=metadata)
                except KeyUnavailableError as error:
                    scan.unchecked.append((card, error))
                except VaultCryptoError:
                    scan.unbound.append(card)
                else:
                    scan.listed.append(card)
                if len(scan.listed) == limit or scanned >= most:
                    scan.has_more = has_more or index < len(page) - 1
                    return scan
            if not has_more or scan.scanned_through is None:
                return scan
            last = scan.scanned_through
            after = (last.created_at, last.token)

    async def check_fingerprints(
        self, account_id: str, held: Sequence[tuple[str, str]], *, requester: str
    ) -> list[CheckedFingerprint]:
        """What each held (vault token, fingerprint) is to its card of `account_id`, in the
        order given (`remit.vault.fingerprint_checks`). Audited as one event for the batch:
        how many cards had each answer, and the first few of those opened to tell that their
        fingerprint was replaced; a card of another account, or none, is answered UNKNOWN as
        a card that does not exist, and counted with those."""
        if not 1 <= len(held) <= MAX_FINGERPRINT_CHECKS:
            raise invalid(f"Give 1 to {MAX_FINGERPRINT_CHECKS} cards to check.", "cards")
        async with self._engine.begin() as db:
            found = await SqlVaultRepository(db).get_cards(sorted({token for token, _ in held}))
        ring = self._keys.load()
        checked = [
            check_fingerprint(ring, account_id, token, fingerprint, found.get(token))
            for token, fingerprint in held
        ]
        counts = ", ".join(
            f"{sum(1 for c in checked if c.check is check)} {check.value}"
            for check in FingerprintCheck
        )
        opened = [c.vault_token for c in checked if c.opened]
        purpose = f"check_fingerprints: {len(checked)} cards ({counts})"
        if opened:
            purpose += f"; opened {_first_tokens(opened)}"
        await self._audit(
            AuditEvent(
                id=new_id("vae"),
                created_at=self._clock.now(),
                action=AuditAction.CHECK_FINGERPRINTS,
                requester=requester,
                purpose=purpose,
                succeeded=True,
                account_id=account_id,
            )
        )
        return checked

    async def _card(self, account_id: str, token: str) -> StoredCard:
        async with self._statement() as repo:
            card = await repo.get_card(token)
        return self._usable(account_id, token, card)

    @staticmethod
    def _usable(account_id: str, token: str, card: StoredCard | None) -> StoredCard:
        if _live_card_of(card, account_id):
            return card
        raise _no_such_token(token)

    # --- forwarding --------------------------------------------------------------------

    async def forward(self, account_id: str, token: str, request: ForwardRequest) -> Forwarded:
        destination = self._destinations.get(request.destination)
        refusal = _forward_refusal(request, allowed=destination is not None)
        if refusal is not None:
            # Refused before the card is even read, and recorded like every other attempt.
            await self._audit(self._refused_forward_event(account_id, token, request))
            raise refusal
        assert destination is not None
        digest = request_digest(token, request)
        async with self._statement() as repo:
            recorded, found = await repo.forward_start(account_id, request.reference, token)
        if recorded is not None:
            if not recorded.answers(token, request.destination, digest):
                # Refused before the card is opened, and audited like the refusals above: the
                # network never sees it, and the caller is not told of another operation.
                await self._audit(self._refused_forward_event(account_id, token, request))
                raise reference_reused(request.reference)
            return Forwarded(vault_pb2.ForwardedAuthorization.FromString(recorded.result), True)
        if not _live_card_of(found, account_id):
            # Another account's card, a deleted one, or none: an invalid access attempt, which
            # PCI DSS 10.2.1.4 asks to be logged like the refused destination above.
            await self._audit(self._refused_forward_event(account_id, token, request))
            await self._refuse_while_in_flight(token, request.reference)
            raise _no_such_token(token)
        if not has_time_for(acquirer_call_needs_s()):
            # The acquirer would have less than its timeout before the caller gives up: its
            # answer could be lost, and the CVC spent with it. Refused before the card is
            # opened, so that nothing is sent, as its caller is told.
            log.warning("not forwarding %s: the caller's deadline is too near", request.reference)
            await self._audit(self._refused_forward_event(account_id, token, request))
            raise not_sent_for_lack_of_time(f"The authorization {request.reference}")
        card = found
        now = self._clock.now()
        ring = self._keys.load()
        try:
            opened = open_card(ring, token, account_id, card.sealed, metadata=card_metadata(card))
        except VaultCryptoError as error:
            log.error("card %s could not be decrypted for %s", token, request.purpose)
            await self._audit(self._forward_event(card, request, succeeded=False))
            if not isinstance(error, KeyUnavailableError):
                raise
            # A version declared lost is refused as a retired one, in-flight guard included.
            unavailable = await self._as_declared(error)
            if unavailable.code == KEY_RETIRED_CODE:
                await self._refuse_while_in_flight(token, request.reference)
            # Before its CVC is taken: nothing was sent, nor spent (`_unforwardable`).
            raise _unforwardable(token, unavailable) from None
        # The audit event is committed before the card leaves the vault, by the statement that
        # takes the CVC: a CVC goes with one authorization only (PCI DSS 3.3.1), so of
        # concurrent forwards of the card only the one that took it sends it. It is destroyed
        # before it is sent, so an authorization that gets no answer does not get it back:
        # it may have been sent, and its retry goes without it. Only one the destination
        # refused before carrying it out, which certainly was not sent, gets it back.
        async with self._statement() as repo:
            taken = await repo.audit_forward_taking_cvc(
                self._forward_event(card, request, succeeded=True), now
            )
        took_the_cvc = taken is not None
        if taken is not None and _details_taken_unchecked(card, taken):
            log.error(
                "forward %s: the expiry or billing details of card %s changed between its "
                "read and the taking of its CVC, without its seals; refused as tampered",
                request.reference, token,
            )  # fmt: skip
            await self._audit_refused_after_taking(card, request)
            raise tampered()
        as_read = card
        if taken is not None and taken.sealed != card.sealed.cvc_ciphertext:
            # An update of the card's details between its read and the taking re-sealed its
            # CVC under the new ones: the card is sent as it was when its CVC was taken, and
            # the CVC's seal, opened under those details (`_taken_cvc`), checks them.
            card = _as_taken(card, taken)
        try:
            cvc = self._taken_cvc(ring, card, opened.cvc, taken)
        except VaultCryptoError:
            log.error("the CVC taken for forward %s could not be opened", request.reference)
            await self._audit_refused_after_taking(card, request)
            raise
        if cvc is None and card is not as_read:
            # No key to open the taken CVC with, so nothing checked the details taken with
            # it: the card goes as it was read, whose seals were checked.
            card = as_read
        if took_the_cvc and cvc is None:
            # Its CVC key is gone before the CVC expired: clocks of vault processes that differ
            # by more than the grace, a key file restored from before the key, or keys from the
            # environment, whose CVC keys are in the memory of the process that stored the CVC.
            log.warning(
                "the CVC of %s had not expired but its CVC key is gone; the authorization is "
                "sent without it",
                token,
            )
        address = request.billing_address
        if address is None:
            stored_address = card.billing_details.get("address")
            address = (
                {str(k): str(v) for k, v in stored_address.items() if v is not None}
                if isinstance(stored_address, dict)
                else {}
            )
        outbound = OutboundAuthorization(
            reference=request.reference,
            merchant_id=account_id,
            card_number=opened.number,
            exp_month=card.summary.exp_month,
            exp_year=card.summary.exp_year,
            cvc=cvc,
            amount_minor=request.amount_minor,
            currency=request.currency,
            capture=request.capture,
            billing_address=address,
            three_d_secure_authenticated=request.three_d_secure_authenticated,
            stored_credential=request.stored_credential,
        )
        try:
            result = await destination.authorize(outbound)
        except UnstartedRefusalError:
            # The destination refused it before carrying it out: the CVC was not sent, so it
            # goes back to the card for the retry the caller is invited to make, which would
            # otherwise go without it.
            restored: bool | None = None
            if taken is not None and cvc is not None:
                try:
                    restored = await self._put_cvc_back(card, taken, cvc, request)
                except Exception as error:
                    restored = False
                    # The caller is told what happened all the same: nothing was sent. Told
                    # anything else, the core would look the authorization up as unknown.
                    # The error's type alone: nothing of the card goes into the log.
                    log.error(
                        "forward %s was refused before it was sent, and the CVC of %s could "
                        "not be put back (%s): its retry goes without it",
                        request.reference, token, type(error).__name__,
                    )  # fmt: skip
            try:
                await self._audit_unsent(card, request, restored)
            except Exception as error:
                # As above: the refusal stands whatever happens to its record.
                log.error(
                    "forward %s was refused before it was sent, and that could not be "
                    "audited (%s): its audit event still reads as sent",
                    request.reference, type(error).__name__,
                )  # fmt: skip
            raise
        # The answer is recorded for the reference, unless a concurrent call recorded one
        # first, which then stands: for this call too if it was for the same operation.
        async with self._statement() as repo:
            earlier = await repo.finish_forward(
                account_id, request.reference, token, request.destination, digest,
                result.SerializeToString(), self._clock.now(),
            )  # fmt: skip
        if earlier is None:
            return Forwarded(result, replayed=False)
        if not earlier.answers(token, request.destination, digest):
            # A concurrent forward of another operation took the reference while this one was
            # at the destination. Its answer is not this call's, and this call's answer cannot
            # be recorded under a reference that is taken: the caller is refused, and what the
            # destination said is logged for an operator (an authorization it holds under the
            # reference is not this vault's record).
            log.error(
                "forward %s to %s was answered (approved: %s, authorization %s) after its "
                "reference was recorded for other parameters; the answer is not recorded",
                request.reference, request.destination, result.approved,
                result.authorization_id or "none",
            )  # fmt: skip
            raise reference_reused(request.reference)
        return Forwarded(vault_pb2.ForwardedAuthorization.FromString(earlier.result), True)

    async def _refuse_while_in_flight(self, token: str, reference: str) -> None:
        """Before refusing to forward a card it will not open any more: while an earlier
        forward of `reference` with it may still commit at the acquirer, answer that the
        outcome is unknown instead (`remit.grpcutil.forward_in_flight`). The refusal would have
        the core look the reference up, find nothing yet, and fail the attempt as never sent,
        while the acquirer could still authorize it. The audit event's time and this one are
        both the database's (the vault process's clock, `remit.vault.vault_clock`), whichever
        vault process stamped the event."""
        after = self._clock.now() - forward_may_still_commit_for()
        async with self._statement() as repo:
            in_flight = await repo.forward_sent_after(token, reference, after)
        if in_flight:
            log.warning(
                "not refusing %s yet: an earlier forward of it may still be at the acquirer",
                reference,
            )
            raise forward_in_flight(reference)

    async def _audit_refused_after_taking(self, card: StoredCard, request: ForwardRequest) -> None:
        """Record that a forward refused after it took the card's CVC (its seals failed) sent
        nothing: its audit event, committed with the taking, reads as sent, and the log is
        append-only. The CVC taken stays destroyed."""
        await self._audit(
            replace(
                self._forward_event(card, request, succeeded=False),
                purpose=f"{request.purpose}: not sent, the card failed its seals",
            )
        )

    async def _audit_unsent(
        self, card: StoredCard, request: ForwardRequest, restored: bool | None
    ) -> None:
        """Record that a forward the destination refused before carrying it out was not sent:
        its audit event, committed before the card left the vault, reads as granted, and the
        log is append-only. With it, when a CVC was taken, whether it was put back (`restored`;
        None: no CVC was taken). One statement, on the refusal path only."""
        destination = request.destination
        events = [
            replace(
                self._forward_event(card, request, succeeded=False),
                purpose=f"{request.purpose}: not sent, refused by {destination} before it was "
                "carried out",
            )
        ]
        if restored is not None:
            outcome = "held again" if restored else "could not be put back: stays destroyed"
            events.append(
                replace(
                    self._forward_event(card, request, succeeded=restored),
                    action=AuditAction.PUT_BACK_CVC,
                    purpose=f"the CVC taken for this forward, not sent: {outcome}",
                )
            )
        async with self._statement() as repo:
            await repo.insert_audit_events(events)

    async def _put_cvc_back(
        self, card: StoredCard, taken: TakenCvc, cvc: Secret[str], request: ForwardRequest
    ) -> bool:
        """Put back the CVC a forward took, for a forward the destination refused before
        carrying it out: sealed anew under the CVC key of the hour it was stored in (so it is
        destroyed when it would have been) with its expiry, for the format the card had when it
        was taken. Only into an empty slot of the same card, not deleted, still of that format
        and with the expiry, billing details and fingerprint its seal binds, and only if it has
        not expired (`SqlVaultRepository.put_cvc_back`); else it stays destroyed and the retry
        goes without it, as before. True if it was put back.

        It stays single-use: this forward did not send it (the destination said so), and it is
        back only once this forward is done with it; whichever forward takes it next takes it
        alone (`audit_forward_taking_cvc`) and sends it once."""
        now = self._clock.now()
        restored = False
        created: list[int] = []
        if now < taken.expires_at:
            hour = self._stored_cvc_hour(taken.sealed, taken.expires_at)
            # A CVC sealed before CVC keys is sealed under its hour's CVC key here, as a
            # re-seal seals it: a forward opens a CVC it did not read with its card only
            # under a CVC key (`_taken_cvc`).
            cvc_key, created = self._cvc_key(self._keys.load(), hour, now)
            binding = CardBinding(
                card.token, card.account_id, taken.seal_format, card_metadata(card)
            )
            sealed = seal_cvc(cvc_key, binding, cvc)
            async with self._statement() as repo:
                restored = await repo.put_cvc_back(
                    card, sealed, taken.seal_format, taken.expires_at, now
                )
        for created_hour in created:
            await self._audit(
                self._cvc_key_event(AuditAction.CREATE_CVC_KEY, request.requester, created_hour)
            )
        if restored:
            log.info(
                "forward %s was refused by %s before it was sent; the CVC of %s is held again",
                request.reference, request.destination, card.token,
            )  # fmt: skip
        else:
            log.info(
                "forward %s was refused by %s before it was sent; the CVC of %s stays "
                "destroyed (the card changed, or its CVC expired)",
                request.reference, request.destination, card.token,
            )  # fmt: skip
        return restored

    def _taken_cvc(
        self, ring: KeyRing, card: StoredCard, opened: Secret[str] | None, taken: TakenCvc | None
    ) -> Secret[str] | None:
        """The CVC a forward took, opened. What was taken is what was opened, unless a re-seal
        sealed the CVC anew (under a CVC key) between the forward's read of the card and the
        taking: then it is opened as it now is, so that the forward that destroyed it sends
        it.

        That re-seal may have made the CVC key it sealed it under (the key of the hour a CVC
        sealed before CVC keys was stored in) after the forward loaded `ring`, in this vault
        process or another: the key file is read again before the key is taken for gone, or
        the CVC, destroyed already, would be lost to the authorization. Only on this path,
        which a re-seal's race alone takes: any other forward loads the ring once."""
        if taken is None:
            return None
        if taken.sealed == card.sealed.cvc_ciphertext:
            return opened
        hour = sealed_cvc_hour(taken.sealed)
        if hour is not None and hour not in ring.cvc_keys:
            ring = self._keys.load()
        binding = CardBinding(card.token, card.account_id, taken.seal_format, card_metadata(card))
        return open_cvc_under_cvc_key(ring, binding, taken.sealed)

    def _refused_forward_event(
        self, account_id: str, token: str, request: ForwardRequest
    ) -> AuditEvent:
        """A forward refused before any card was opened: as the caller named it, since the card
        (if any) may be another account's and is not described to this one (0: no key
        version, as no card was opened)."""
        return self._forward_audit(account_id, token, request, succeeded=False, key_version=0)

    def _forward_event(
        self, card: StoredCard, request: ForwardRequest, *, succeeded: bool
    ) -> AuditEvent:
        return self._forward_audit(
            card.account_id, card.token, request, succeeded=succeeded,
            key_version=card.sealed.kek_version,
        )  # fmt: skip

    def _forward_audit(
        self,
        account_id: str,
        token: str,
        request: ForwardRequest,
        *,
        succeeded: bool,
        key_version: int,
    ) -> AuditEvent:
        return AuditEvent(
            id=new_id("vae"),
            created_at=self._clock.now(),
            action=AuditAction.FORWARD,
            requester=request.requester,
            purpose=request.purpose,
            succeeded=succeeded,
            token=token,
            account_id=account_id,
            destination=request.destination,
            reference=request.reference,
            key_version=key_version,
        )

    async def drop_expired_cvcs(self) -> int:
        async with self._engine.begin() as db:
            return await SqlVaultRepository(db).drop_expired_cvcs(self._clock.now())

    async def maintain_cvc_keys(self, *, requester: str) -> CvcKeyChanges:
        """Make the CVC keys of this hour and the next (so a tokenization never has to), and
        delete those whose CVCs have all expired, which puts every copy of those CVCs (in the
        WAL, backups, free space) beyond use. Each change is audited once it is in the key
        file, by the vault process that made it."""
        now = self._clock.now()
        hour = cvc_key_hour(now)
        _, created = ensure_cvc_keys(self._keys, [hour, hour + 1], now)
        destroyed = destroy_cvc_keys(self._keys, self._cvc_retention, now - CVC_KEY_GRACE)
        if destroyed:
            log.info("destroyed the CVC keys of hours %s", destroyed)
        for created_hour in created:
            await self._audit(
                self._cvc_key_event(AuditAction.CREATE_CVC_KEY, requester, created_hour)
            )
        for destroyed_hour in destroyed:
            await self._audit(
                self._cvc_key_event(AuditAction.DESTROY_CVC_KEY, requester, destroyed_hour)
            )
        return CvcKeyChanges(created, destroyed)

    def _cvc_key_event(self, action: AuditAction, requester: str, hour: int) -> AuditEvent:
        verb = "create" if action is AuditAction.CREATE_CVC_KEY else "destroy"
        return AuditEvent(
            id=new_id("vae"),
            created_at=self._clock.now(),
            action=action,
            requester=requester,
            purpose=f"{verb} the CVC key of {cvc_key_hour_start(hour).isoformat()}",
            succeeded=True,
        )

    async def prune_shredded(self) -> None:
        """Remove what shredded cards and destroyed CVCs left in dead row versions."""
        async with self._statement() as repo:
            await repo.prune_dead_card_versions()

    # --- keys --------------------------------------------------------------------------

    async def rotate_key(self, *, requester: str) -> int:
        """A new key version, which wraps every new data key from now on.

        The key file and the audit log cannot change together: the rotation is recorded as
        started (committed) before the file changes, and as done once the new file is on disk.
        A crash in between leaves a rotation started and not known to be done (the key status
        tells), never one unaudited."""
        try:
            before = self._keys.load()
        except KeyStoreError as error:
            raise VaultError(message=str(error), kind=ErrorKind.FAILED_PRECONDITION) from None
        await self._audit(
            self._key_event(
                AuditAction.ROTATE_KEY, requester, "rotate: started", before, succeeded=False
            )
        )
        try:
            with self._keys.locked():
                ring = self._keys.load().with_new_version(self._clock.now())
                # On disk when this returns, directory included (`FileKeyStore`): nothing is
                # wrapped under the new version, here or in another vault process, before.
                self._keys.save(ring)
        except KeyStoreError as error:
            await self._audit(
                self._key_event(
                    AuditAction.ROTATE_KEY, requester, "rotate: failed", before, succeeded=False
                )
            )
            raise VaultError(message=str(error), kind=ErrorKind.FAILED_PRECONDITION) from None
        await self._audit(self._key_event(AuditAction.ROTATE_KEY, requester, "rotate", ring))
        log.info("vault key %s rotated to version %d", ring.name, ring.current_version)
        return ring.current_version

    async def rewrap_batch(self, *, batch_size: int = 0, requester: str) -> RewrapProgress:
        """Re-wrap up to `batch_size` data keys under the current KEK, oldest version first;
        numbers stay sealed."""
        if not 0 <= batch_size <= MAX_REWRAP_BATCH:
            raise invalid(f"batch_size must be between 0 and {MAX_REWRAP_BATCH}.", "batch_size")
        page = await self._rewrap_page(batch_size or DEFAULT_REWRAP_BATCH, requester, after=None)
        _log_rewrap_failures(page.failed, page.progress.key_version)
        return page.progress

    async def rewrap_all(
        self, *, requester: str, batch_size: int = DEFAULT_REWRAP_BATCH
    ) -> int:  # fmt: skip
        """One pass over the data keys wrapped under older versions, page after page. A data
        key that does not unwrap is passed over, and the next page starts after it: however
        many there are, and wherever they sort, every other one is re-wrapped. Those passed
        over are logged in one line for the pass."""
        total = 0
        failed: list[tuple[str, str]] = []
        after: tuple[int, str] | None = None
        while True:
            page = await self._rewrap_page(batch_size, requester, after=after)
            total += page.progress.rewrapped
            failed.extend(page.failed)
            if not page.full or page.progress.remaining == 0:
                _log_rewrap_failures(failed, page.progress.key_version)
                return total
            after = page.last

    async def _rewrap_page(
        self, batch_size: int, requester: str, *, after: tuple[int, str] | None
    ) -> _RewrapPage:
        done = 0
        failed: list[tuple[str, str]] = []
        async with self._engine.begin() as db:
            repo = SqlVaultRepository(db)
            # As in `tokenize`: the version data keys are re-wrapped under is one that is not
            # retired or removed before they are committed.
            await repo.hold_key_ring_shared()
            ring = self._keys.load()
            cards = await repo.cards_wrapped_below(ring.current_version, batch_size, after=after)
            for card in cards:
                try:
                    rewrapped = rewrap(
                        ring, card.token, card.account_id, card.sealed,
                        metadata=card_metadata(card),
                    )  # fmt: skip
                    await repo.save_wrapping(card.token, rewrapped)
                except VaultCryptoError as error:
                    failed.append((card.token, error.code or type(error).__name__))
                    continue
                done += 1
            remaining = await repo.count_wrapped_below(ring.current_version)
            if done:
                await repo.insert_audit_event(
                    self._key_event(AuditAction.REWRAP, requester, f"rewrapped {done}", ring)
                )
        last = (cards[-1].sealed.kek_version, cards[-1].token) if cards else None
        return _RewrapPage(
            RewrapProgress(done, remaining, ring.current_version),
            failed,
            last,
            full=len(cards) == batch_size,
        )

    async def reseal_batch(self, *, batch_size: int = 0, requester: str) -> ResealProgress:
        """Re-seal up to `batch_size` cards still sealed in a format before the newest
        (`reseal_all`)."""
        if not 0 <= batch_size <= MAX_RESEAL_BATCH:
            raise invalid(f"batch_size must be between 0 and {MAX_RESEAL_BATCH}.", "batch_size")
        page = await self._reseal_page(batch_size or DEFAULT_RESEAL_BATCH, requester, after=None)
        _log_reseal_failures(page.failed)
        async with self._engine.begin() as db:
            remaining = await SqlVaultRepository(db).count_to_reseal()
        return ResealProgress(page.resealed, remaining)

    async def reseal_all(
        self, *, requester: str, batch_size: int = DEFAULT_RESEAL_BATCH
    ) -> int:  # fmt: skip
        """One pass over the cards still sealed in a format before the newest (token-bound,
        before vault migration 0006; account-bound, before 0008), or whose fingerprint is of
        the one key every account shared (before 0010), by token: each is opened, given its
        fingerprint under its account's own key (computed from its number, which never leaves
        the vault), and sealed anew under a fresh data key, bound to its account and to the
        metadata its row holds with that fingerprint (which its old seals did not bind, or
        bound with the old fingerprint), and wrapped under the current KEK, in a transaction
        of its own that holds its row. A card another
        transaction holds (a re-seal in another vault process, a forward taking its CVC) is
        passed over for the next pass; one that does not open is passed over and logged, in
        one line for the pass, as a re-wrap does."""
        total = 0
        failed: list[tuple[str, str]] = []
        after: str | None = None
        while True:
            page = await self._reseal_page(batch_size, requester, after=after)
            total += page.resealed
            failed.extend(page.failed)
            if not page.full:
                _log_reseal_failures(failed)
                return total
            after = page.last

    async def _reseal_page(
        self, batch_size: int, requester: str, *, after: str | None
    ) -> _ResealPage:
        async with self._engine.begin() as db:
            tokens = await SqlVaultRepository(db).tokens_to_reseal(batch_size, after=after)
        resealed = 0
        failed: list[tuple[str, str]] = []
        for token in tokens:
            try:
                resealed += await self._reseal_card(token, requester)
            except VaultCryptoError as error:
                failed.append((token, error.code or type(error).__name__))
        last = tokens[-1] if tokens else None
        return _ResealPage(resealed, failed, last, full=len(tokens) == batch_size)

    async def _reseal_card(self, token: str, requester: str) -> bool:
        """Re-seal the card unless another transaction holds it or it needs it no more.

        Its number and CVC move to a fresh data key: every copy of its old row (the WAL, a
        backup, dead row versions) still needs the old one, which no live row holds any more,
        so those copies go once the KEK version that wrapped it is removed. A CVC still held
        is sealed anew under the CVC key of the hour it was stored in, which outlives it by
        the grace only, rather than dropped: it is the authorization's, which PCI DSS 3.3.1
        lets it wait for, and a payment confirmed across the upgrade would otherwise go
        without it. An expired one, or one whose CVC key is gone, is dropped."""
        now = self._clock.now()
        created: list[int] = []
        async with self._engine.begin() as db:
            repo = SqlVaultRepository(db)
            # As in `tokenize`: the version the new data key is wrapped under is not retired
            # or removed before the card is committed.
            await repo.hold_key_ring_shared()
            ring = self._keys.load()
            card = await repo.card_to_reseal(token)
            if card is None:
                return False
            # The metadata the row holds now is checked by the old seals only if they bound it
            # (`verify_binding`); the new seals bind it with the fingerprint the account's own.
            opened = open_card(
                ring, token, card.account_id, card.sealed, metadata=card_metadata(card)
            )
            refingerprinted = replace(
                card,
                summary=replace(
                    card.summary, fingerprint=fingerprint(ring, card.account_id, opened.number)
                ),
                fingerprint_scope=FingerprintScope.ACCOUNT,
            )
            cvc = opened.cvc if card.cvc_held(now) else None
            cvc_key = None
            if cvc is not None:
                assert card.sealed.cvc_ciphertext is not None
                assert card.cvc_expires_at is not None
                stored_hour = self._stored_cvc_hour(card.sealed.cvc_ciphertext, card.cvc_expires_at)
                cvc_key, created = self._cvc_key(ring, stored_hour, now)
            resealed = seal_card(
                ring, token, card.account_id, opened.number, cvc, cvc_key,
                metadata=card_metadata(refingerprinted),
            )  # fmt: skip
            await repo.save_reseal(
                token, resealed, card.cvc_expires_at,
                fingerprint=refingerprinted.summary.fingerprint,
            )  # fmt: skip
            await repo.insert_audit_event(
                self._event(AuditAction.RESEAL, requester, "reseal", replace(card, sealed=resealed))
            )
        for hour in created:
            await self._audit(self._cvc_key_event(AuditAction.CREATE_CVC_KEY, requester, hour))
        return True

    def _stored_cvc_hour(self, sealed_cvc: bytes, expires_at: datetime) -> int:
        """The hour a CVC (sealed as `sealed_cvc`, expiring at `expires_at`) was stored in:
        named by a CVC sealed under a CVC key, and one retention before its expiry for one
        sealed before CVC keys. That hour's key is deleted one retention and the grace after
        the hour ends, after the CVC expires."""
        hour = sealed_cvc_hour(sealed_cvc)
        if hour is None:
            hour = cvc_key_hour(expires_at - self._cvc_retention)
        return hour

    async def set_minimum_decryption_version(self, minimum: int, *, requester: str) -> int:
        """Retire the key versions below `minimum`: nothing they wrap is unwrapped any more.
        Refused while a card not deleted has its data key wrapped under one of them.

        As for a rotation or a removal, the key file and the audit log cannot change together:
        a retirement that passes its checks is recorded as started (committed on its own)
        before the key file changes, and its outcome after, as a removal's is, in the
        transaction that holds the key ring until then. A crash in between leaves a retirement
        started and not known to be done (the key status tells), never one unaudited."""
        # The key set as the retirement found it, once it is recorded as started.
        started: KeyRing | None = None
        try:
            async with self._engine.begin() as db:
                repo = SqlVaultRepository(db)
                # Held until the key file is saved: a tokenization or re-wrap that read the ring
                # before this change has committed, and is counted; one that reads it after,
                # reads the new floor.
                await repo.hold_key_ring_exclusive()
                behind = await repo.count_wrapped_below(minimum)
                # The key file's lock is taken last and held across no wait on anything else:
                # `flock` blocks the whole process, and a vault process stuck there could not
                # commit the tokenizations another one's change waits for. Hence checked
                # twice: before the started record (a refusal changes nothing and records
                # nothing), and again once the lock is taken anew.
                with self._keys.locked():
                    before = self._keys.load()
                    _check_retirement(before, minimum, behind)
                await self._audit(self._retirement_event(requester, minimum, before, "started"))
                started = before
                with self._keys.locked():
                    ring = self._keys.load()
                    _check_retirement(ring, minimum, behind)
                    ring = ring.with_minimum(minimum)
                    self._keys.save(ring)
                await repo.insert_audit_event(
                    self._retirement_event(requester, minimum, ring, succeeded=True)
                )
        except (KeyStoreError, RemitError) as error:
            if started is not None:
                await self._audit(self._retirement_event(requester, minimum, started, "failed"))
            if isinstance(error, KeyStoreError):
                raise VaultError(message=str(error), kind=ErrorKind.FAILED_PRECONDITION) from None
            raise
        return minimum

    def _retirement_event(
        self, requester: str, minimum: int, ring: KeyRing, stage: str = "", *,
        succeeded: bool = False,
    ) -> AuditEvent:  # fmt: skip
        """The retirement's outcome; or, with a `stage`, that it passed its checks and the key
        file is about to change ("started"), or that it then did not ("failed")."""
        purpose = f"minimum {minimum}" + (f": {stage}" if stage else "")
        return self._key_event(
            AuditAction.SET_MINIMUM_VERSION, requester, purpose, ring, succeeded=succeeded
        )

    async def remove_key_version(self, version: int, *, requester: str) -> int:
        """Delete a retired key version's material from the key file, once no card that is not
        deleted has its data key wrapped under it. Every other copy of a data key wrapped under
        it (a deleted card's dead row versions, the WAL, backups) is then beyond use with the
        key file; the file kept from before its last change goes with it, but copies of
        earlier key files elsewhere (backups) still hold the version and are the operator's to
        destroy. The attempt is audited, granted or refused, and one that passes its checks is
        recorded as started before the key file changes."""
        if version < 1:
            raise invalid("version must be a key version, 1 or more.", "version")
        try:
            await self._remove_key_version(version, requester)
        except VaultError:
            await self._audit(self._removal_event(requester, version, succeeded=False))
            raise
        log.info("vault key version %d removed from the key file", version)
        return version

    async def _remove_key_version(self, version: int, requester: str) -> None:
        if not self._keys.writable:
            raise VaultError(
                message=f"The vault's keys come from {KEYS_ENV}; remove key version {version} "
                "there and restart the vault.",
                kind=ErrorKind.FAILED_PRECONDITION,
            )
        try:
            async with self._engine.begin() as db:
                repo = SqlVaultRepository(db)
                # Held until the key file is saved, as when retiring: a card stored or
                # re-wrapped under a ring read before this is committed and counted, and one
                # stored after reads a ring without the version.
                await repo.hold_key_ring_exclusive()
                live_data_keys = await repo.count_live_wrapped_under(version)
                # Taken last, as when retiring (see `set_minimum_decryption_version`), and
                # never across a wait on the database.
                with self._keys.locked():
                    refusal = removal_refusal(self._keys.load(), version, live_data_keys)
                if refusal is not None:
                    raise refusal
                # Committed on its own before the material is gone: if this transaction then
                # fails to commit, the removal is still in the log, as started.
                await self._audit(self._removal_event(requester, version, started=True))
                with self._keys.locked():
                    ring = self._keys.load()
                    refusal = removal_refusal(ring, version, live_data_keys)
                    if refusal is not None:
                        raise refusal
                    self._keys.save(ring.without_version(version))
                await repo.insert_audit_event(
                    self._removal_event(requester, version, succeeded=True)
                )
        except KeyStoreError as error:
            raise VaultError(message=str(error), kind=ErrorKind.FAILED_PRECONDITION) from None

    def _removal_event(
        self, requester: str, version: int, *, succeeded: bool = False, started: bool = False
    ) -> AuditEvent:
        """The removal's outcome; or, `started`, that it passed its checks and the key file is
        about to change (not yet known to have succeeded)."""
        return AuditEvent(
            id=new_id("vae"),
            created_at=self._clock.now(),
            action=AuditAction.REMOVE_KEY_VERSION,
            requester=requester,
            purpose=f"remove key version {version}" + (": started" if started else ""),
            succeeded=succeeded,
            key_version=version,
        )

    async def declare_key_version_lost(
        self, version: int, *, requester: str
    ) -> KeyVersionDeclaredLost:
        """Record that key version `version`, missing from the key ring, is lost for good: the
        cards whose data keys it wraps are refused from now on as under a retired version
        (`remit.vault.lost_keys`), so that the payment attempts held for want of it end with
        what the network holds. Refused, and audited as refused, for a version the key ring
        still holds or never numbered. Idempotent: declared already, the first declaration
        stands and is answered again (audited as such)."""
        ring = self._keys.load()
        refusal = declaration_refusal(ring, version)
        if refusal is not None:
            await self._audit(self._declaration_event(requester, version, "refused"))
            raise refusal
        async with self._engine.begin() as db:
            repo = SqlVaultRepository(db)
            declared, newly = await repo.declare_key_version_lost(
                ring.name, version, requester, self._clock.now()
            )
            cards = await repo.count_live_wrapped_under(version)
            await repo.insert_audit_event(
                self._declaration_event(
                    requester, version, "" if newly else "declared already", succeeded=True
                )
            )
        if newly:
            log.warning(
                "key %r version %d declared lost by %s: the %d cards not deleted under it are "
                "refused as under a retired version from now on",
                ring.name, version, requester, cards,
            )  # fmt: skip
        return KeyVersionDeclaredLost(declared, newly, cards)

    def _declaration_event(
        self, requester: str, version: int, outcome: str, *, succeeded: bool = False
    ) -> AuditEvent:
        purpose = f"declare key version {version} lost" + (f": {outcome}" if outcome else "")
        return AuditEvent(
            id=new_id("vae"),
            created_at=self._clock.now(),
            action=AuditAction.DECLARE_KEY_VERSION_LOST,
            requester=requester,
            purpose=purpose,
            succeeded=succeeded,
            key_version=version,
        )

    async def _as_declared(self, error: KeyUnavailableError) -> KeyUnavailableError:
        """`error`; or, for a key version missing here that an operator declared lost, the
        refusal as under a retired version (`remit.vault.lost_keys`). Asked of the database only
        when a card's key version is missing, which no card of a sound key ring meets."""
        if not declared_missing(error):
            return error
        async with self._engine.begin() as db:
            declared = await SqlVaultRepository(db).lost_key_version(
                error.key_name, error.key_version
            )
        return error if declared is None else lost_key(error, declared)

    async def key_status(self) -> KeyStatus:
        ring = self._keys.load()
        async with self._engine.begin() as db:
            repo = SqlVaultRepository(db)
            counts = await repo.data_keys_by_version()
            to_reseal = await repo.count_to_reseal()
        return KeyStatus(
            current_version=ring.current_version,
            minimum_decryption_version=ring.minimum_decryption_version,
            versions=[
                KeyVersionStatus(key.version, key.created_at, counts.get(key.version, 0))
                for key in sorted(ring.versions.values(), key=lambda key: key.version)
            ],
            cards_to_reseal=to_reseal,
        )

    def _key_event(
        self, action: AuditAction, requester: str, purpose: str, ring: KeyRing, *,
        succeeded: bool = True,
    ) -> AuditEvent:  # fmt: skip
        return AuditEvent(
            id=new_id("vae"),
            created_at=self._clock.now(),
            action=action,
            requester=requester,
            purpose=purpose,
            succeeded=succeeded,
            key_version=ring.current_version,
        )

    # --- audit -------------------------------------------------------------------------

    async def list_audit_events(self, wanted: AuditFilter) -> tuple[list[AuditEvent], bool]:
        if not 1 <= wanted.limit <= 100:
            raise invalid("limit must be between 1 and 100.", "limit")
        async with self._engine.begin() as db:
            repo = SqlVaultRepository(db)

            async def anchor(event_id: str | None, param: str) -> tuple[datetime, str] | None:
                if event_id is None:
                    return None
                found = await repo.audit_anchor(event_id)
                if found is None:
                    raise VaultError(
                        message=f"No such audit event: '{event_id}'",
                        kind=ErrorKind.NOT_FOUND,
                        code="resource_missing",
                        param=param,
                    )
                return found

            return await repo.list_audit_events(
                wanted,
                starting_after=await anchor(wanted.starting_after, "starting_after"),
                ending_before=await anchor(wanted.ending_before, "ending_before"),
            )

    def _event(
        self,
        action: AuditAction,
        requester: str,
        purpose: str,
        card: StoredCard,
        *,
        key_version: int | None = None,
        succeeded: bool = True,
    ) -> AuditEvent:
        return AuditEvent(
            id=new_id("vae"),
            created_at=self._clock.now(),
            action=action,
            requester=requester,
            purpose=purpose,
            succeeded=succeeded,
            token=card.token,
            account_id=card.account_id,
            key_version=card.sealed.kek_version if key_version is None else key_version,
        )

    def _refusal(
        self, action: AuditAction, requester: str, purpose: str, token: str, account_id: str
    ) -> AuditEvent:
        """A refused access, recorded as the caller named it and without describing the card
        (no key version), which may be another account's or none at all."""
        return AuditEvent(
            id=new_id("vae"),
            created_at=self._clock.now(),
            action=action,
            requester=requester,
            purpose=purpose,
            succeeded=False,
            token=token,
            account_id=account_id,
        )

    async def _audit(self, event: AuditEvent) -> None:
        """Record the event; it is committed when this returns."""
        async with self._statement() as repo:
            await repo.insert_audit_event(event)

    async def close(self) -> None:
        for destination in self._destinations.values():
            await destination.close()
