"""Which available rows an automatic payout pays out, given the oldest first."""

from remit.ledger.payout_contents import paid_out_rows


def test_every_row_is_paid_out_when_they_sum_to_the_amount() -> None:
    assert paid_out_rows([("a", 500), ("b", -100), ("c", 300)], 700) == ["a", "b", "c"]


def test_the_oldest_rows_a_manual_payout_took_are_left_out() -> None:
    assert paid_out_rows([("a", 500), ("b", 200), ("c", 300)], 500) == ["b", "c"]


def test_a_row_a_manual_payout_took_in_part_stays_with_the_automatic_payout() -> None:
    assert paid_out_rows([("a", 500), ("b", 200), ("c", 300)], 400) == ["b", "c"]


def test_nothing_is_paid_out_of_no_rows() -> None:
    assert paid_out_rows([], 100) == []
