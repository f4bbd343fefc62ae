"""What README says of upgrades, list pages and operators' settings is what the code does: the
upgrade notes name what the migrations do and say, a list page's byte budget is the one the
services cut pages to, and the settings table holds the setting the isk migrations read."""

import re
from pathlib import Path

from remit.config import ISK_AMOUNTS_READ_AS_HUNDREDTHS, STORED_ISK_AMOUNTS
from remit.payment_methods.fingerprint_conversion import BATCH_SIZE
from remit.storage.answer_budget import PAGE_ANSWER_BYTES
from remit.storage.migrate import TREES
from tests.support.migration_modules import MIGRATIONS, migration_module

README = Path(__file__).resolve().parents[2] / "README.md"


def _text() -> str:
    """README with its lines joined, so that a phrase may span a line break."""
    return " ".join(README.read_text().split())


def _note(opening: str) -> str:
    """The upgrade note (a paragraph) that begins with `opening`."""
    [paragraph] = [
        " ".join(p.split()) for p in README.read_text().split("\n\n") if p.startswith(opening)
    ]
    return paragraph


def test_the_isk_stop_says_the_migrations_before_it_stay_applied() -> None:
    note = _note("Upgrading past core migration 0089 and acquirer migration 0007")
    assert TREES == ("core", "vault", "acquirer")
    assert "the databases migrate in the order core, vault, acquirer" in note
    assert "The migration that stops changes nothing, but the ones before it stay applied" in note
    assert "changing nothing:" not in note
    # The revisions each stop leaves: the ones right before the guards.
    core_guard = migration_module("core", "0089_isk_amounts_in_hundredths")
    acquirer_guard = migration_module("acquirer", "0007_isk_amounts_in_hundredths")
    assert core_guard.down_revision.startswith("0088_")
    assert acquirer_guard.down_revision.startswith("0006_")
    assert "isk in the core leaves the core at 0088" in note
    assert "fully migrated and the acquirer at 0006" in note


def test_the_acquirer_0006_note_names_what_a_refused_upgrade_says() -> None:
    note = _note("Upgrading past acquirer migration 0006")
    source = (MIGRATIONS / "acquirer" / "versions" / "0006_authorization_amounts.py").read_text()
    refusal = re.search(r"LIMIT (\d+)", source)
    assert refusal is not None
    assert f"naming up to {refusal.group(1)} of them" in note
    said = "authorizations whose captured plus released exceeds the authorized amount: "
    assert said.rstrip(": ") in " ".join(source.replace("'", "").replace("||", "").split())
    assert f"(`{said}auth_...`)" in note
    assert "`remit migrate` exits `3`" in note
    assert "the acquirer database stays at 0005" in note


def test_the_core_0087_note_names_the_indexes_built_and_dropped() -> None:
    note = _note("Upgrading past core migration 0087")
    migration = migration_module("core", "0087_event_order")
    source = (MIGRATIONS / "core" / "versions" / "0087_event_order.py").read_text()
    assert 'create_index_online(_BY_SEQ, "events", ["account_id", "created_at", "seq"])' in source
    assert "drop_index_online(_BY_ID" in source
    assert migration._BY_ID == "ix_events_account_id_created_at"
    assert "on (account_id, created_at, seq), concurrently" in note
    assert "drops the old one on (account_id, created_at, id)" in note
    assert "in batches" in note
    assert "listed (`GET /v1/events`), streamed (`remit listen`) and redelivered" in note


def test_a_list_page_s_byte_budget_is_the_one_documented() -> None:
    assert PAGE_ANSWER_BYTES == 4 * 1024 * 1024
    text = _text()
    assert "A page can hold fewer than `limit` objects while `has_more` is true" in text
    assert "a byte budget of about 4 MiB" in text
    assert "a client pages by `has_more`" in text


def test_the_isk_setting_is_in_the_operators_settings() -> None:
    [row] = [
        line
        for line in README.read_text().splitlines()
        if line.startswith(f"| `{STORED_ISK_AMOUNTS}` |")
    ]
    assert f"`{ISK_AMOUNTS_READ_AS_HUNDREDTHS}`" in row
    assert "core migration 0089 and acquirer migration 0007" in row


def test_the_fingerprint_checks_are_audited_per_account_within_a_batch() -> None:
    assert f"`check_fingerprints` event per account within each batch of {BATCH_SIZE}" in _text()


def test_the_audit_commands_next_page_line_is_named_as_it_starts() -> None:
    """`remit vault audit` and `remit accounts keys audit` end a page with older events left
    with a line starting `more: ` (tests/integration/vault/test_vault_audit_command.py)."""
    rows = [
        line
        for line in README.read_text().splitlines()
        if line.startswith(("| `remit vault audit ", "| `remit accounts keys audit "))
    ]
    assert len(rows) == 2
    for row in rows:
        assert "the last line, starting `more: `, is the command that lists them" in row
