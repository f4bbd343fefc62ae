"""Which days reconciliation takes: those that are over, and today only as partial."""

from datetime import date

import pytest

from remit.core.errors import ErrorKind, RemitError
from remit.ledger.reconcile import settlement_day

TODAY = date(2026, 11, 2)


def test_a_day_that_is_over_is_taken() -> None:
    assert settlement_day("2026-11-01", today=TODAY, allow_partial=False) == date(2026, 11, 1)


@pytest.mark.parametrize("allow_partial", [False, True])
def test_a_day_not_begun_is_refused(allow_partial: bool) -> None:
    with pytest.raises(RemitError) as refused:
        settlement_day("2026-11-03", today=TODAY, allow_partial=allow_partial)
    assert (refused.value.kind, refused.value.param) == (ErrorKind.INVALID_ARGUMENT, "date")
    assert "has not begun" in refused.value.message


def test_today_is_refused_unless_a_partial_result_is_asked_for() -> None:
    with pytest.raises(RemitError) as refused:
        settlement_day("2026-11-02", today=TODAY, allow_partial=False)
    assert refused.value.kind is ErrorKind.FAILED_PRECONDITION
    assert refused.value.code == "day_not_over"
    assert "--allow-partial" in refused.value.message
    assert settlement_day("2026-11-02", today=TODAY, allow_partial=True) == TODAY
