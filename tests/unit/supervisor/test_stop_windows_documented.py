"""The README tells whoever runs a process alone how long its own stop takes and what stop
window to give it (an orchestrator's default may be shorter): the figures it gives are the
code's, at the default network timeout, so a change to a timeout shows here."""

import itertools
import math
import re
from pathlib import Path

import pytest

from remit.config import network_timeout_s, shutdown_grace_s
from remit.grpcutil.server import CLEANUP_WAIT_S
from remit.rest.server import CANCELLED_ANSWER_WAIT_S
from remit.supervisor import STOP_MARGIN_S, stop_grace_s
from remit.webhooks.domain import DELIVERY_TIMEOUT_S
from remit.worker.leases import stop_drain_for

README = Path(__file__).resolve().parents[3] / "README.md"
STOP_TABLE_HEADER = "| process | its own stop, at most | by default | stop window to give it |"


def _seconds(cell: str) -> float:
    match = re.fullmatch(r"(\d+) s", cell)
    assert match is not None, cell
    return float(match.group(1))


def _documented() -> dict[str, tuple[str, float, float]]:
    """By process: its row's account of its stop, the stop and the window it gives."""
    lines = README.read_text().splitlines()
    start = lines.index(STOP_TABLE_HEADER) + 2  # past the header and its rule
    rows: dict[str, tuple[str, float, float]] = {}
    for line in itertools.takewhile(lambda line: line.startswith("|"), lines[start:]):
        processes, account, stop, window = (cell.strip() for cell in line.strip("|").split("|"))
        for process in re.findall(r"`remit (\w+)`", processes):
            rows[process] = (account, _seconds(stop), _seconds(window))
    return rows


@pytest.fixture(autouse=True)
def _default_network_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REMIT_NETWORK_TIMEOUT_S", raising=False)


def test_every_process_that_runs_alone_has_its_stop_documented() -> None:
    assert set(_documented()) == {"worker", "core", "api", "vault", "acquirer"}


def test_the_worker_s_stop_is_its_jobs_drain_then_its_payments_drain() -> None:
    account, stop, window = _documented()["worker"]
    jobs_s = stop_drain_for(DELIVERY_TIMEOUT_S)
    assert f"{jobs_s:g} s for the jobs" in account
    assert f"up to {DELIVERY_TIMEOUT_S:g} s" in account
    assert stop == jobs_s + network_timeout_s()
    assert window == stop + STOP_MARGIN_S
    # What `remit serve` gives the stage the worker stops in.
    assert window == stop_grace_s()


def test_the_core_s_stop_is_its_calls_then_their_network_steps() -> None:
    _, stop, window = _documented()["core"]
    assert stop == shutdown_grace_s() + CLEANUP_WAIT_S + network_timeout_s()
    assert window == stop + STOP_MARGIN_S


@pytest.mark.parametrize(
    ("process", "own_stop_s"),
    [
        ("vault", shutdown_grace_s({}) + CLEANUP_WAIT_S),
        ("acquirer", shutdown_grace_s({}) + CLEANUP_WAIT_S),
        # uvicorn's grace is whole seconds (`remit.rest.server.uvicorn_config`).
        ("api", math.ceil(shutdown_grace_s({})) + CANCELLED_ANSWER_WAIT_S),
    ],
)
def test_the_other_processes_stop_within_what_is_documented(
    process: str, own_stop_s: float
) -> None:
    _, stop, window = _documented()[process]
    assert own_stop_s <= stop == shutdown_grace_s() + CLEANUP_WAIT_S
    assert window == stop + STOP_MARGIN_S
