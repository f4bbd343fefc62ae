"""Moving the card fingerprint charges show onto their account's own.

A charge keeps a copy of its card as its payment method held it when the charge was made
(`charges.card`, shown as `payment_method_details.card`): the charges made before the vault
re-fingerprinted their card (vault migration 0010) show the fingerprint every account shared.
The worker's conversion (`remit.payment_methods.fingerprint_conversion`) rewrites them with
their payment method, in the same transaction, from the pairs the vault answered for it.
"""

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

# The charges of each converted payment method (by `ix_charges_payment_method`, core migration
# 0090) still showing the fingerprint the vault was asked about: a charge showing any other
# value (none, or its account's already) is left as it is, so a run again changes nothing.
_REPLACE_CHARGE_FINGERPRINTS = text(
    "UPDATE charges AS c"
    " SET card = jsonb_set(c.card, '{fingerprint}', to_jsonb(converted.fingerprint))"
    " FROM unnest(CAST(:payment_method_ids AS text[]), CAST(:held AS text[]),"
    " CAST(:fingerprints AS text[])) AS converted(payment_method_id, held, fingerprint)"
    " WHERE c.account_id = :account_id AND c.payment_method_id = converted.payment_method_id"
    " AND c.card ->> 'fingerprint' = converted.held"
)


async def replace_charge_fingerprints(
    db: AsyncConnection, account_id: str, converted: Sequence[tuple[str, str, str]]
) -> int:
    """Rewrite the fingerprint the account's charges show, for each (payment method id, old
    fingerprint, account's fingerprint) the vault answered, where a charge of that payment
    method still shows the old one. How many charges changed."""
    if not converted:
        return 0
    result = await db.execute(
        _REPLACE_CHARGE_FINGERPRINTS,
        {
            "account_id": account_id,
            "payment_method_ids": [row[0] for row in converted],
            "held": [row[1] for row in converted],
            "fingerprints": [row[2] for row in converted],
        },
    )
    return int(result.rowcount)
