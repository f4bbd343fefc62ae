"""How far the core's or the worker's host clock may be from the database's before it warns."""

from collections.abc import Callable, Mapping

import pytest

from remit.config import ConfigError, core_max_clock_skew_s, worker_max_clock_skew_s

Setting = Callable[[Mapping[str, str] | None], float]
SETTINGS = [
    pytest.param(worker_max_clock_skew_s, "REMIT_WORKER_MAX_CLOCK_SKEW_S", id="worker"),
    pytest.param(core_max_clock_skew_s, "REMIT_CORE_MAX_CLOCK_SKEW_S", id="core"),
]


@pytest.mark.parametrize(("setting", "name"), SETTINGS)
def test_a_process_warns_past_five_seconds_unless_configured_otherwise(
    setting: Setting, name: str
) -> None:
    assert setting({}) == 5.0
    assert setting({name: "0.5"}) == 0.5


def test_each_process_reads_its_own_bound() -> None:
    assert core_max_clock_skew_s({"REMIT_WORKER_MAX_CLOCK_SKEW_S": "1"}) == 5.0
    assert worker_max_clock_skew_s({"REMIT_CORE_MAX_CLOCK_SKEW_S": "1"}) == 5.0


@pytest.mark.parametrize(("setting", "name"), SETTINGS)
@pytest.mark.parametrize("value", ["soon", "0", "-1", "3601", "nan", "inf"])
def test_a_bound_out_of_range_or_malformed_names_the_variable(
    setting: Setting, name: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=name):
        setting({name: value})
