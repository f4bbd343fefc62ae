"""What `--help` says of a command's output and exits is what the command does: the settlement
report's totals are those it writes, reconcile and reconciliations name what they find and how
they exit, and a failed migration's exit says what stays applied."""

import dataclasses
from pathlib import Path

import pytest

from remit.acquirer.settlement import CurrencyTotal
from remit.cli import main
from remit.command_exits import EXIT_INTERNAL_FAILURE, EXIT_TEMPORARY_FAILURE
from remit.ledger.reconcile import RowStatus

README = Path(__file__).resolve().parents[2] / "README.md"


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_the_settlement_report_help_names_every_total_of_a_currency(
    capsys: pytest.CaptureFixture[str],
) -> None:
    shown = _help("settlement-report", capsys)
    totals = [total.name for total in dataclasses.fields(CurrencyTotal)]
    assert totals == ["rows", "amount", "fee", "released"]
    assert "CUR.rows=N CUR.amount=SUM CUR.fee=SUM CUR.released=SUM ..." in shown
    assert '"totals": {CUR: {"rows", "amount", "fee", "released"}}' in shown


def test_the_reconcile_help_tells_of_released_remainders_and_failed_refunds_settled(
    capsys: pytest.CaptureFixture[str],
) -> None:
    shown = _help("reconcile", capsys)
    assert "a capture also on what it released of its authorization uncaptured" in shown
    assert (
        "A refund the ledger booked as failed (its money given back to the balance) that the "
        f"acquirer settled is an {RowStatus.OUTCOME_MISMATCH.value}." in shown
    )


def test_the_reconciliations_help_says_an_unreachable_core_is_to_be_retried_later(
    capsys: pytest.CaptureFixture[str],
) -> None:
    shown = _help("reconciliations", capsys)
    assert f"{EXIT_TEMPORARY_FAILURE} when the core could not be reached" in shown
    assert "2 on refused input or when the core refused the request or failed;" in shown


def test_the_serve_help_names_every_signal_that_stops_the_platform(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert "stop them all on Ctrl-C, SIGTERM or SIGHUP" in _help("serve", capsys)


def test_a_failed_migration_s_exit_says_the_migrations_before_it_stay_applied(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`remit migrate` exits 3 when a migration fails, after those before it committed
    (tests/integration/test_migrating_at_start.py): not a command that did nothing."""
    assert (
        f"{EXIT_INTERNAL_FAILURE} the command itself failed (a bug) and did nothing, or a "
        "migration failed (migrate: those before it stay applied);" in _help("migrate", capsys)
    )
    (row,) = [
        line
        for line in README.read_text().splitlines()
        if line.startswith(f"| `{EXIT_INTERNAL_FAILURE}` |")
    ]
    assert "For `remit migrate`, a migration failed" in row
    assert "so those before it stay applied" in row


def test_the_card_fingerprints_help_names_charges_and_the_rows_left_for_good(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Exit 1 is not only cards to re-seal: rows the vault cannot answer for, and cards under
    a key version lost or missing, are left on every run, as README's row says too."""
    with pytest.raises(SystemExit):
        main(["card-fingerprints", "convert", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "rewrites those whose fingerprint was replaced, the fingerprint their charges show" in (
        shown
    )
    assert "but also, on every run, cards it cannot answer for" in shown
    assert "under a key version lost or missing from the key file" in shown
    (row,) = [
        line
        for line in README.read_text().splitlines()
        if line.startswith("| `remit card-fingerprints convert` |")
    ]
    assert "the fingerprint the payment methods' charges show" in row
    assert "but also, run after run, rows the vault cannot answer for" in row
    assert "cards under a key version lost or missing from the key file" in row
