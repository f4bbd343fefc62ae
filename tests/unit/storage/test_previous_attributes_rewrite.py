"""Core migration 0058 rewrites the events in one transaction rather than committing each page:
an event rewritten twice does not read as it did, so a run after a failure part-way would
spoil the events the first run had committed."""

from tests.support.migration_modules import migration_module

_MIGRATION = migration_module("core", "0058_previous_attributes_by_key")


def test_rewriting_a_changed_hash_twice_records_a_key_left_as_it_was_as_added() -> None:
    after = {"kept": "1", "changed": "3", "added": "4"}
    once = _MIGRATION.by_key("metadata", {"kept": "1", "changed": "2"}, after)
    assert once == {"changed": "2", "added": None}
    assert _MIGRATION.by_key("metadata", once, after) == {
        "changed": "2",
        "added": None,
        "kept": None,
    }
