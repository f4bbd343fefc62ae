"""`remit ledger verify`: which ledger transactions the ledger itself wrote.

verify holds the ledger's own steps (a capture, a refund, a payout and its return, a dispute's
withdrawal and reinstatement) to the balance transactions and payout rows they write. Until
2026-12-06 the generic posting RPCs took any id between any of the caller's accounts, so ids
such as `order_1:cancel`, `inv_7:refund` or `sub_3:payout` are legitimate history: a step at
the end of an id does not make a transaction the ledger's. The ledger's own ids are the id of
its object (made by `new_id`: `ch_...`, `re_...`, `po_...`, `dp_...`) followed by the step, and
since the ledger's first version each carries metadata naming that object (`postings.py`,
`payouts.py`): a capture its charge, a refund's hold, posting and release the refund, a
refund's failure the refund posting it reverses, a payout's steps the payout, a dispute's
withdrawal and reinstatement the dispute. A transaction is taken for the ledger's only when
both agree, which a caller's id would have had to copy on purpose.

One step names a second object between the first and the step: the withdrawal of what a
refund gave back by failing after its charge's dispute opened, `dp_...:re_...:dispute`, one
per refund. It is the dispute's (its metadata names the dispute, as the first id does).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class _Owner:
    prefix: str
    steps: tuple[str, ...]
    key: str  # a literal in the SQL: metadata keys are plain words (no colon to bind)
    named_suffix: str = ""  # what the key's value has after the object's id
    between: str = ""  # a pattern of what the id has between the object's id and the step


_OWNERS: Final = (
    _Owner("ch", ("capture",), "charge"),
    _Owner("re", ("refund_hold", "refund", "refund_release"), "refund"),
    _Owner("re", ("refund_failure",), "reverses", named_suffix=":refund"),
    _Owner("po", ("payout", "paid", "cancel", "failure"), "payout"),
    _Owner("dp", ("dispute", "dispute_reversal"), "dispute"),
    _Owner("dp", ("dispute",), "dispute", between=":re_[^:]+"),
)
OWN_STEPS: Final = frozenset(step for owner in _OWNERS for step in owner.steps)


def written_by_ledger(
    id_column: str, metadata_column: str, steps: Iterable[str], name: str = "own"
) -> tuple[str, Mapping[str, str]]:
    """An SQL condition (and its bound parameters, named after `name`) true for the ledger's
    own transactions of `steps`, given the columns holding a transaction's id and metadata.

    Patterns and suffixes are bound: text() would read ":refund" in a literal as a parameter."""
    wanted = set(steps)
    unknown = wanted - OWN_STEPS
    if unknown:
        raise ValueError(f"not steps the ledger writes: {sorted(unknown)}")
    conditions: list[str] = []
    params: dict[str, str] = {f"{name}_colon": ":"}
    for number, owner in enumerate(_OWNERS):
        chosen = [step for step in owner.steps if step in wanted]
        if not chosen:
            continue
        pattern, suffix = f"{name}_{number}_id", f"{name}_{number}_named"
        params[pattern] = f"^{owner.prefix}_[^:]+{owner.between}:({'|'.join(chosen)})$"
        params[suffix] = owner.named_suffix
        conditions.append(
            f"({id_column} ~ :{pattern} AND {metadata_column} ->> '{owner.key}' = "
            f"split_part({id_column}, :{name}_colon, 1) || :{suffix})"
        )
    return f"({' OR '.join(conditions)})", params
