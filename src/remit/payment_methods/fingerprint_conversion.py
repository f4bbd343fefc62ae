"""Moving the core's copies of card fingerprints onto each account's own.

Since vault migration 0010 a card's fingerprint is its account's own, and the vault's re-seal
gives the cards it stored before theirs. The core copied a card's fingerprint into every
payment method and token made of it, and Radar keeps it in `card_fingerprint` value lists and
per-card velocity counters: those made before the re-seal hold the fingerprint every account
shared, which links a card across accounts and no longer matches the card entered again.

The worker asks the vault about the rows not yet known to hold their account's fingerprint
(`fingerprint_scope` 1, core migration 0088), a bounded batch at a time, grouped by account
(`vault.v1.CheckCardFingerprints`). For each row whose fingerprint the vault answers REPLACED
it writes the account's fingerprint; CURRENT marks the row as checked; a row of a card not
re-sealed yet (PENDING), or one the vault cannot answer for (UNKNOWN: a card deleted before its
re-seal, or one that does not open), is left as it is and asked about again on the next run.
The old-to-new pairs the vault answered for an account are exactly what its Radar data is
rewritten by, in the same transaction as the rows: list items and counters under an old
fingerprint of a card of that account, and no other account's. The charges of each payment
method converted are rewritten there too where they still show its old fingerprint
(`remit.payments.charge_fingerprints`): a charge keeps a copy of its card as it was made.
The strings the account's rules compare `:card_fingerprint:` with are rewritten there too
(remit.radar.fingerprint_rules).

Idempotent and resumable: a row once converted leaves the partial index it is read through,
each account's batch commits on its own, and a run that stops (the vault out of reach) leaves
the rest for the next run. The fingerprints written are guarded by the value the vault was
asked about, so a row changed meanwhile is left for the next run.

Nothing of a card is logged: counts only. The vault never sees the number leave it, and never
tells the shared fingerprint of a card, only whether the one held is it.
"""

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import Clock, SystemClock
from remit.payment_methods.repository import HeldFingerprintRow, SqlPaymentMethodRepository
from remit.payment_methods.vault_client import MAX_FINGERPRINT_CHECKS, FingerprintVault
from remit.payments.charge_fingerprints import replace_charge_fingerprints
from remit.radar.fingerprint_rules import replace_rule_fingerprints
from remit.radar.repository import replace_card_fingerprints

log = logging.getLogger(__name__)

BATCH_SIZE: Final = MAX_FINGERPRINT_CHECKS
# Payment methods first: a token's card is most often a payment method's too.
TABLES: Final = ("payment_methods", "tokens")
TASK: Final = "card-fingerprint-conversion"
INTERVAL_S: Final = 600.0


@dataclass(frozen=True)
class ConversionCounts:
    """What one run did. Counts only: a run never reports a token or a fingerprint."""

    checked: int = 0
    converted: int = 0
    # Rows of cards the vault has not re-sealed yet, or could not answer for: left as they are.
    pending: int = 0
    unknown: int = 0
    list_items: int = 0
    # Charges of the payment methods converted that showed their old fingerprint.
    charges: int = 0
    rules: int = 0

    def __add__(self, other: "ConversionCounts") -> "ConversionCounts":
        # Field by field by name, so a count added to the class is summed without a line here.
        return ConversionCounts(
            **{
                field.name: getattr(self, field.name) + getattr(other, field.name)
                for field in fields(self)
            }
        )


class FingerprintConversion:
    """Rewrites the payment methods, tokens and Radar data of old fingerprints (above)."""

    def __init__(
        self,
        vault: FingerprintVault,
        core: AsyncEngine,
        *,
        batch_size: int = BATCH_SIZE,
        clock: Clock | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_FINGERPRINT_CHECKS:
            raise ValueError(f"batch_size must be 1 to {MAX_FINGERPRINT_CHECKS}")
        self._vault = vault
        self._core = core
        self._batch_size = batch_size
        self._clock = clock or SystemClock()

    async def run(self) -> ConversionCounts:
        """One pass over every row not yet known to hold its account's fingerprint."""
        total = ConversionCounts()
        for table in TABLES:
            after: str | None = None
            while True:
                async with self._core.begin() as db:
                    rows = await SqlPaymentMethodRepository(db).fingerprints_to_convert(
                        table, after=after, limit=self._batch_size
                    )
                if not rows:
                    break
                total += await self._convert_batch(table, rows)
                after = rows[-1].id
                if len(rows) < self._batch_size:
                    break
        if total.checked:
            log.info(
                "card fingerprints: %d payment methods and tokens checked with the vault, %d "
                "given their account's fingerprint, %d of cards the vault has not re-sealed "
                "yet, %d it could not answer for; %d Radar list items, %d rules and %d charges "
                "rewritten",
                total.checked, total.converted, total.pending, total.unknown, total.list_items,
                total.rules, total.charges,
            )  # fmt: skip
        return total

    async def _convert_batch(
        self, table: str, rows: Sequence[HeldFingerprintRow]
    ) -> ConversionCounts:
        by_account: defaultdict[str, list[HeldFingerprintRow]] = defaultdict(list)
        for row in rows:
            by_account[row.account_id].append(row)
        total = ConversionCounts()
        for account_id, held in by_account.items():
            total += await self._convert_account(table, account_id, held)
        return total

    async def _convert_account(
        self, table: str, account_id: str, rows: list[HeldFingerprintRow]
    ) -> ConversionCounts:
        # Rows holding the same card by the same fingerprint are one question.
        asked = sorted({(row.vault_token, row.fingerprint) for row in rows})
        # One answer per question, in order: any other reply fails the run, changing nothing.
        answers = dict(
            zip(asked, await self._vault.check_fingerprints(account_id, asked), strict=True)
        )
        checked: list[tuple[str, str, str]] = []
        replaced: dict[str, str] = {}
        pending = unknown = 0
        for row in rows:
            answer = answers.get((row.vault_token, row.fingerprint))
            check = None if answer is None else answer.check
            if answer is not None and answer.fingerprint and check in ("current", "replaced"):
                checked.append((row.id, row.fingerprint, answer.fingerprint))
                if check == "replaced":
                    replaced[row.fingerprint] = answer.fingerprint
            elif check == "pending":
                pending += 1
            else:
                unknown += 1
        changed = [row for row in checked if row[1] != row[2]]
        if not checked:
            # Nothing the vault confirmed (every card pending or unanswerable), so nothing to
            # write: no transaction.
            return ConversionCounts(checked=len(rows), pending=pending, unknown=unknown)
        async with self._core.begin() as db:
            await SqlPaymentMethodRepository(db).record_account_fingerprints(
                table, account_id, checked
            )
            items = await replace_card_fingerprints(db, account_id, replaced)
            rules = await replace_rule_fingerprints(db, account_id, replaced, self._clock.now())
            # After the payment methods' rows: a payment holding one's row lock
            # (`use_for_payment`) commits its charge before that row's update goes on, and this
            # statement, which starts after it, sees the charge.
            charges = (
                await replace_charge_fingerprints(db, account_id, changed)
                if table == "payment_methods"
                else 0
            )
        return ConversionCounts(
            checked=len(rows),
            converted=len(changed),
            pending=pending,
            unknown=unknown,
            list_items=items,
            charges=charges,
            rules=rules,
        )
