"""Accounts, keys and the principal a presented key resolves to."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Final

# The most key digests one ListKeyDigests answers: 3.4 MB of digests, within gRPC's default
# 4 MiB message.
MAX_LISTED_KEY_DIGESTS: Final = 100_000


class KeyKind(Enum):
    SECRET = "secret"  # noqa: S105 (a key kind, not a credential)
    PUBLISHABLE = "publishable"


@dataclass(frozen=True)
class Pricing:
    """Per-account processing fee: `fee_percent_bps` basis points plus a fixed part."""

    fee_percent_bps: int = 290
    fee_fixed_minor: int = 30


@dataclass(frozen=True)
class Account:
    id: str
    created_at: datetime
    default_currency: str
    raw_card_access: bool
    api_version: str | None
    pricing: Pricing
    available_delay_days: int
    automatic_payouts: bool
    radar_enabled: bool


@dataclass(frozen=True)
class ApiKey:
    id: str
    account_id: str
    kind: KeyKind
    last4: str
    livemode: bool
    created_at: datetime
    # When it stops authenticating: in the past for a revoked key, in the future for one being
    # rolled (it keeps working until then), None while it has no end.
    revoked_at: datetime | None

    def works_at(self, moment: datetime) -> bool:
        """Whether the key authenticates at `moment`."""
        return self.revoked_at is None or self.revoked_at > moment


# The longest a revoked key may keep working, as for a webhook endpoint's old secret.
MAX_KEY_EXPIRY = timedelta(days=7)
# How long `remit accounts keys roll` leaves the rolled key working, unless told otherwise.
DEFAULT_EXPIRE_OLD_AFTER_HOURS = 24.0


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: an account acting through one of its keys."""

    account_id: str
    key_id: str
    key_kind: KeyKind
    livemode: bool
    api_version: str | None
    raw_card_access: bool


@dataclass(frozen=True)
class NewAccount:
    """An account just created, with the only copies of its plaintext keys."""

    account: Account
    secret_key: str
    publishable_key: str
    secret_api_key: ApiKey
    publishable_api_key: ApiKey


@dataclass(frozen=True)
class AccountMadeBefore:
    """What a CreateAccount retried under its idempotency key is answered: the account and keys
    the first call made, as they are now. Not their plaintexts: those were shown once, to the
    first call, and are stored only as digests (`remit.accounts.keys`)."""

    account: Account
    secret_api_key: ApiKey
    publishable_api_key: ApiKey


# The error code of a revoked key presented again, as Stripe's for an expired key.
API_KEY_EXPIRED = "api_key_expired"
