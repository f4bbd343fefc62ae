"""The ledger's pure rules: what a valid transaction is, how it moves balances, its hash."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from remit.ledger.domain import (
    LedgerError,
    LedgerTransaction,
    Posting,
    TransactionKind,
    balance_changes,
    canonical_encoding,
    canonical_encoding_around_sequence,
    chain_hash,
    payload_digest,
    validate_partial_post,
    validate_postings,
)
from remit.ledger.reconcile import Difference, RowKind, RowStatus, SettledItem, compare

AT = datetime(2026, 11, 2, tzinfo=UTC)


def tx(
    *postings: Posting,
    sequence: int = 1,
    metadata: dict[str, str] | None = None,
    previous: str = "",
) -> LedgerTransaction:
    return LedgerTransaction(
        account_id="acct_1",
        id=f"t{sequence}",
        sequence=sequence,
        kind=TransactionKind.POSTED,
        postings=postings,
        metadata=metadata or {},
        description=None,
        created_at=AT,
        hash="",
        previous_hash=previous,
    )


@pytest.mark.parametrize(
    ("postings", "code"),
    [
        ([Posting("a", -5, "usd")], "parameter_invalid"),
        ([Posting("a", -5, "usd"), Posting("b", 4, "usd")], "transaction_unbalanced"),
        ([Posting("a", -5, "usd"), Posting("b", 5, "eur")], "transaction_unbalanced"),
        ([Posting("a", 0, "usd"), Posting("b", 0, "usd")], "parameter_invalid"),
        ([Posting("a", -5, "xxx"), Posting("b", 5, "xxx")], "invalid_currency"),
        ([Posting("A B", -5, "usd"), Posting("b", 5, "usd")], "parameter_invalid"),
        ([Posting("a", -5, "usd"), Posting("a", 5, "usd")], "parameter_invalid"),
    ],
)
def test_invalid_postings_are_refused_with_a_precise_code(
    postings: list[Posting], code: str
) -> None:
    with pytest.raises(LedgerError) as raised:
        validate_postings(postings)
    assert raised.value.code == code


def test_several_currencies_each_balancing_are_valid() -> None:
    validate_postings(
        [
            Posting("a", -5, "usd"),
            Posting("b", 5, "usd"),
            Posting("a", -7, "jpy"),
            Posting("b", 7, "jpy"),
        ]
    )


def test_a_partial_post_keeps_the_sign_and_stays_within_the_reservation() -> None:
    reserved = [Posting("a", -100, "usd"), Posting("b", 100, "usd")]
    validate_partial_post(reserved, [Posting("a", -40, "usd"), Posting("b", 40, "usd")])
    with pytest.raises(LedgerError):
        validate_partial_post(reserved, [Posting("a", 40, "usd"), Posting("b", -40, "usd")])
    with pytest.raises(LedgerError):
        validate_partial_post(reserved, [Posting("a", -40, "usd"), Posting("c", 40, "usd")])


def test_pending_legs_reserve_and_posting_them_releases_the_reservation() -> None:
    legs = [Posting("a", -100, "usd"), Posting("b", 100, "usd")]
    reserved = balance_changes(TransactionKind.PENDING, legs)
    assert (reserved[("a", "usd")].pending_outgoing, reserved[("b", "usd")].pending_incoming) == (
        100,
        100,
    )
    posted = balance_changes(
        TransactionKind.POST_PENDING, [Posting("a", -30, "usd"), Posting("b", 30, "usd")], legs
    )
    assert (posted[("a", "usd")].posted, posted[("a", "usd")].pending_outgoing) == (-30, -100)
    assert (posted[("b", "usd")].posted, posted[("b", "usd")].pending_incoming) == (30, -100)
    voided = balance_changes(TransactionKind.VOID_PENDING, legs, legs)
    assert voided[("a", "usd")].posted == 0
    assert voided[("a", "usd")].pending_outgoing == -100


def test_the_hash_covers_content_and_chains_on_the_previous_hash() -> None:
    base = tx(Posting("a", -5, "usd"), Posting("b", 5, "usd"))
    same_reordered = tx(Posting("b", 5, "usd"), Posting("a", -5, "usd"))
    assert chain_hash("", base) == chain_hash("", same_reordered)
    assert chain_hash("", base) != chain_hash("x", base)
    changed = tx(Posting("a", -6, "usd"), Posting("b", 6, "usd"))
    assert chain_hash("", base) != chain_hash("", changed)
    tagged = tx(Posting("a", -5, "usd"), Posting("b", 5, "usd"), metadata={"k": "v"})
    assert chain_hash("", base) != chain_hash("", tagged)


def test_the_payload_digest_ignores_posting_order_but_not_amounts() -> None:
    one = payload_digest(
        TransactionKind.POSTED,
        [Posting("a", -5, "usd"), Posting("b", 5, "usd")],
        metadata={},
        description=None,
    )
    two = payload_digest(
        TransactionKind.POSTED,
        [Posting("b", 5, "usd"), Posting("a", -5, "usd")],
        metadata={},
        description=None,
    )
    three = payload_digest(
        TransactionKind.POSTED,
        [Posting("b", 6, "usd"), Posting("a", -6, "usd")],
        metadata={},
        description=None,
    )
    assert one == two != three


def test_reconciliation_pairs_items_on_kind_and_reference() -> None:
    def item(kind: RowKind, ref: str, amount: int) -> SettledItem:
        return SettledItem(
            kind=kind, reference=ref, account_id="acct_1", amount=amount, currency="usd"
        )

    rows = compare(
        [
            item(RowKind.CAPTURE, "ch_1", 100),
            item(RowKind.CAPTURE, "ch_2", 200),
            item(RowKind.REFUND, "ch_1", 100),
        ],
        [
            item(RowKind.CAPTURE, "ch_1", 100),
            item(RowKind.CAPTURE, "ch_2", 201),
            item(RowKind.REFUND, "re_9", 50),
        ],
    )
    assert [(r.kind, r.reference, r.status) for r in rows] == [
        (RowKind.CAPTURE, "ch_1", RowStatus.MATCHED),
        (RowKind.CAPTURE, "ch_2", RowStatus.AMOUNT_MISMATCH),
        (RowKind.REFUND, "ch_1", RowStatus.MISSING_AT_ACQUIRER),
        (RowKind.REFUND, "re_9", RowStatus.MISSING_IN_LEDGER),
    ]


def test_a_pair_says_what_differs_and_leaves_out_what_the_ledger_does_not_know() -> None:
    """The authorization is compared only when the ledger recorded it, the fee only when it
    booked one; a fee alone differing is a fee mismatch, anything else an amount mismatch."""
    ledger = SettledItem(
        kind=RowKind.CAPTURE, reference="ch_1", account_id="acct_1", amount=100,
        currency="usd", authorization_id="auth_1", fee=2,
    )  # fmt: skip
    acquirer = replace(ledger, currency="USD", authorization_id="auth_1")
    unknown_authorization = replace(ledger, reference="ch_2", authorization_id="", fee=None)
    rows = compare(
        [ledger, unknown_authorization, replace(ledger, reference="ch_3")],
        [
            replace(acquirer, fee=3),
            replace(acquirer, reference="ch_2", authorization_id="auth_9", fee=3),
            replace(acquirer, reference="ch_3", amount=101, authorization_id="auth_9"),
        ],
    )
    assert [(r.reference, r.status, r.differences) for r in rows] == [
        ("ch_1", RowStatus.FEE_MISMATCH, (Difference("fee", "2", "3"),)),
        ("ch_2", RowStatus.MATCHED, ()),
        (
            "ch_3",
            RowStatus.AMOUNT_MISMATCH,
            (
                Difference("amount", "100", "101"),
                Difference("authorization_id", "auth_1", "auth_9"),
            ),
        ),
    ]


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"sequence": "0"},
        {"note": '"sequence":0 and "sequence":12'},
        {'"sequence":0': "x"},
    ],
)
@pytest.mark.parametrize("sequence", [1, 9, 10, 123_456_789_012])
def test_the_encoding_cut_at_the_sequence_joins_back_into_the_canonical_encoding(
    metadata: dict[str, str], sequence: int
) -> None:
    """The server hashes head + sequence + tail (`ledger_post`); that must be exactly the
    encoding `chain_hash` covers, whatever the metadata holds."""
    numbered = replace(
        tx(Posting("a", -5, "usd"), Posting("b", 5, "usd"), metadata=metadata), sequence=sequence
    )
    head, tail = canonical_encoding_around_sequence(numbered)
    assert head + str(sequence).encode() + tail == canonical_encoding(numbered)
