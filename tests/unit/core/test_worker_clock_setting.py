"""How far the worker's host clock may be from the database's before the worker warns."""

import pytest

from remit.config import ConfigError, worker_max_clock_skew_s


def test_the_worker_warns_past_five_seconds_unless_configured_otherwise() -> None:
    assert worker_max_clock_skew_s({}) == 5.0
    assert worker_max_clock_skew_s({"REMIT_WORKER_MAX_CLOCK_SKEW_S": "0.5"}) == 0.5


@pytest.mark.parametrize("value", ["soon", "0", "-1", "3601", "nan", "inf"])
def test_a_bound_out_of_range_or_malformed_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="REMIT_WORKER_MAX_CLOCK_SKEW_S"):
        worker_max_clock_skew_s({"REMIT_WORKER_MAX_CLOCK_SKEW_S": value})
