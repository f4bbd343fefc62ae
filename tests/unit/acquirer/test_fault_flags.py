"""The fault flags of `remit serve` and `remit acquirer`, and their environment variables."""

import os

import pytest

from remit.acquirer.faults import FAULT_SETTINGS, FaultConfig
from remit.cli import _apply_fault_flags, build_parser


@pytest.mark.parametrize("command", ["serve", "acquirer"])
def test_the_help_names_every_fault_flag_and_its_environment_variable(command: str) -> None:
    subparsers = build_parser()._subparsers
    assert subparsers is not None
    action = next(a for a in subparsers._group_actions if a.dest == "command")
    help_text = action.choices[command].format_help()  # type: ignore[index]
    for setting in FAULT_SETTINGS:
        assert setting.flag in help_text
        assert setting.env in help_text.replace("\n", " ").replace("- ", "-")


def test_flags_become_the_environment_the_acquirer_process_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Set (to empty, which means unset) so monkeypatch restores whatever the flags write.
    for setting in FAULT_SETTINGS:
        monkeypatch.setenv(setting.env, "")
    monkeypatch.setenv("REMIT_ACQUIRER_ERROR_RATE", "0.5")
    args = build_parser().parse_args(
        ["serve", "--acquirer-lost-response-rate", "0.25", "--acquirer-error-rate", "0.1",
         "--acquirer-fault-seed", "9", "--acquirer-fault-reads"]
    )  # fmt: skip
    _apply_fault_flags(args)
    assert FaultConfig.from_env(os.environ) == FaultConfig(
        error_rate=0.1, lost_response_rate=0.25, seed=9, include_reads=True
    )
