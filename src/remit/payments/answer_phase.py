"""Recovery point `authorization_done` in one autocommitted statement.

Once the network has answered, the answer is kept on the charge and the key moves from
`attempt_created` to `authorization_done`, atomically: a retry that finds the point reached
applies the stored answer and never asks the network again. As a transaction that is five round
trips (BEGIN, lock the key, store the answer, advance the key, COMMIT); as one statement with
data-modifying CTEs it is one, with the same guarantees:

- the key is advanced only if this request still owns it (its owner token) and it is still at
  `attempt_created`; the row lock the UPDATE takes serialises it against a retry or the
  completer taking the key over, and READ COMMITTED re-checks the condition on the row it waited
  for;
- the charge is written only if the key advanced, and the key advances only if the charge
  exists, so either both change or neither does.

When nothing changes (another request took the key over or finished it, or the charge is
missing), the caller falls back to the transaction that explains why (`idempotency.relock`).
"""

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from remit.payments.idempotency import KeyRecord, RecoveryPoint, lease
from remit.storage.fastsql import Db, Statement

_STORE_ANSWER_AND_ADVANCE = Statement(
    """
    WITH advanced AS (
        UPDATE idempotency_keys SET recovery_point = %(to_point)s, locked_until = %(locked_until)s
        WHERE account_id = %(account_id)s AND key = %(key)s AND owner = %(owner)s
          AND recovery_point = %(from_point)s
          AND EXISTS (
              SELECT 1 FROM charges WHERE account_id = %(account_id)s AND id = %(charge_id)s
          )
        RETURNING key
    ), stored AS (
        UPDATE charges SET network_result = %(network_result)s, updated_at = %(now)s
        WHERE account_id = %(account_id)s AND id = %(charge_id)s
          AND EXISTS (SELECT 1 FROM advanced)
        RETURNING id
    )
    SELECT (SELECT count(*) FROM advanced) AS advanced, (SELECT count(*) FROM stored) AS stored
    """,
    json=frozenset({"network_result"}),
)


async def store_answer_and_advance(
    db: Db,
    record: KeyRecord,
    *,
    charge_id: str,
    answer: Mapping[str, object],
    now: datetime,
) -> KeyRecord | None:
    """Keep the network's answer on the charge and reach `authorization_done`; None (and
    nothing written) unless the key was still this request's, at `attempt_created`."""
    row = await _STORE_ANSWER_AND_ADVANCE.first(
        db,
        {
            "to_point": RecoveryPoint.AUTHORIZATION_DONE.value,
            "from_point": RecoveryPoint.ATTEMPT_CREATED.value,
            "locked_until": now + lease(),
            "account_id": record.account_id,
            "key": record.key,
            "owner": record.owner,
            "charge_id": charge_id,
            "network_result": dict(answer),
            "now": now,
        },
    )
    assert row is not None, "the statement always returns its counts"
    if row["advanced"] != 1:
        return None
    assert row["stored"] == 1, "the charge changes exactly when the key does"
    return replace(record, recovery_point=RecoveryPoint.AUTHORIZATION_DONE)
