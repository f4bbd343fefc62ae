"""Which forwards a recorded answer is replayed to: those that repeat the recorded operation.

A forwarded authorization's answer is recorded under its account and reference, and a retry
with that reference gets the recorded answer instead of a second authorization. A forward that
reuses the reference for another operation must not get it: it would be told "authorized" for a
card, amount or capture the network never saw, and money would be recorded as held that is not.
So each record keeps a digest of the parameters that define the operation, and a forward with
the reference but another digest is refused (`reference_reused`), as the acquirer refuses a
reference reused with other parameters.

The parameters that define the operation, and so the digest: the card (its token, which names
the card and is not card data), the destination, the amount and currency, whether it captures,
whether the cardholder passed 3-D Secure, and the stored-credential fields (`off_session`,
`setup_off_session`, `initial_network_transaction_id`), which change what the issuer is asked to
decide. Left out:

- `purpose` and `requester`: they say why and by whom the card is opened, for the audit log;
  they are never sent to the destination and change nothing it is asked, so a retry that words
  them otherwise (another caller resuming the payment) still asks for the same operation.
- the billing address: it feeds the address checks reported with the answer, not what is
  authorized, and the acquirer leaves it out of its own comparison of a retry too
  (`remit.acquirer.domain`), as it does the CVC, which the vault sends with the first
  authorization only.
- the account and the reference: they are the record's key.

The digest is a plain SHA-256 of a canonical JSON encoding (sorted keys, no spaces, ASCII),
behind a tag naming the encoding. Nothing in it is secret (no card data goes in), so a key would
protect nothing and would be one more secret to hold.

Rows recorded before vault migration 0003, or by an earlier vault still running during a rolling
upgrade, have no digest, and it cannot be rebuilt: their amount, currency and flags were never
stored. They are replayed to a forward of the same card to the same destination, which is all
their columns can tell, so that a core resuming a payment across the upgrade still gets its
answer; another card or destination under their reference is refused like any other mismatch.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Final

from remit.vault.domain import ForwardRequest

# Names the encoding below: a change to it (a parameter added) takes a new tag, and rows
# recorded under the old one then compare as mismatches, never as equal by accident.
_ENCODING_TAG: Final = b"remit.vault.forward.v1\x00"


def request_digest(token: str, request: ForwardRequest) -> bytes:
    """The SHA-256 of the parameters that define the forward of `token` that `request` asks
    for (see the module's docstring for which, and why)."""
    credential = request.stored_credential
    parameters = {
        "token": token,
        "destination": request.destination,
        "amount_minor": request.amount_minor,
        "currency": request.currency,
        "capture": request.capture,
        "three_d_secure_authenticated": request.three_d_secure_authenticated,
        "off_session": credential.off_session,
        "setup_off_session": credential.setup_off_session,
        "initial_network_transaction_id": credential.initial_network_transaction_id,
    }
    encoded = json.dumps(parameters, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(_ENCODING_TAG + encoded.encode("ascii")).digest()


@dataclass(frozen=True)
class RecordedForward:
    """The answer recorded for a reference, and what it was recorded for."""

    result: bytes
    token: str
    destination: str
    # None on a row recorded before the digest was kept.
    request_digest: bytes | None

    def answers(self, token: str, destination: str, digest: bytes) -> bool:
        """Whether this is the answer to a forward of `token` to `destination` whose
        parameters have `digest`: the same operation, retried."""
        if self.request_digest is None:
            return (self.token, self.destination) == (token, destination)
        return self.request_digest == digest
