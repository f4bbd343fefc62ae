"""Core migration 0058 rewrites the events recorded with a changed hash whole in
`previous_attributes` into the shape remit records since: the hash's keys that changed, `null`
for one added. They then read at every version as they did; the downgrade gives them back
whole."""

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from alembic import command

from remit.core.jsonview import JsonObject
from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from remit.versioning import render_event
from remit.versioning.previous_attributes import whole_object_before
from tests.support.postgres import scratch_database

_BEFORE = "0057_radar_history"
_AFTER = "0058_previous_attributes_by_key"

_ADDRESS: JsonObject = {
    "city": "London", "country": "GB", "line1": "1 High St", "line2": "Flat 2",
    "postal_code": "N1 1AA", "state": None,
}  # fmt: skip
_CUSTOMER: JsonObject = {
    "object": "customer",
    "id": "cus_1",
    "email": "new@b.test",
    "metadata": {"a": "2", "b": "2", "kept": "k"},
    "shipping": {"address": _ADDRESS, "name": "Ada", "phone": None},
    "invoice_settings": None,
    "preferred_locales": ["en", "fr"],
}

# (event, previous attributes as the earlier version recorded them, as this revision does)
EVENTS: list[tuple[str, JsonObject, JsonObject | None]] = [
    (
        "evt_hashes",
        {
            "metadata": {"a": "1", "gone": "3", "kept": "k"},
            "shipping": {"address": {**_ADDRESS, "line2": None}, "name": "Ada", "phone": None},
            "email": "old@b.test",
        },
        {
            "metadata": {"a": "1", "gone": "3", "b": None},
            "shipping": {"address": {"line2": None}},
            "email": "old@b.test",
        },
    ),
    # A hash that became null, an array, a scalar: as they were.
    (
        "evt_no_hash_compared",
        {
            "invoice_settings": {"custom_fields": None, "default_payment_method": "pm_1"},
            "preferred_locales": ["en"],
        },
        None,
    ),
    ("evt_scalars", {"email": "old@b.test"}, None),
]


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "previous_attributes") as url:
        yield url


def _insert_events(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SET session_replication_role = replica")  # no account needed
        for event_id, previous, _ in EVENTS:
            connection.execute(
                "INSERT INTO events (id, account_id, type, created_at, livemode, data_object, "
                "previous_attributes) VALUES (%s, 'acct_1', 'customer.updated', now(), false, "
                "%s, %s)",
                (event_id, json.dumps(_CUSTOMER), json.dumps(previous)),
            )
        connection.execute(
            "INSERT INTO events (id, account_id, type, created_at, livemode, data_object) "
            "VALUES ('evt_created', 'acct_1', 'customer.created', now(), false, %s)",
            (json.dumps(_CUSTOMER),),
        )


def _stored(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT id, previous_attributes FROM events").fetchall()
    return dict(rows)


def test_events_recorded_with_whole_hashes_are_rewritten_to_their_changed_keys(
    scratch_core: str,
) -> None:
    upgrade("core", scratch_core, _BEFORE)
    _insert_events(scratch_core)
    upgrade("core", scratch_core, _AFTER)
    stored = _stored(scratch_core)

    for event_id, recorded, rewritten in EVENTS:
        assert stored[event_id] == (recorded if rewritten is None else rewritten), event_id
        # The same object before the event, rebuilt as remit rebuilds it now.
        assert whole_object_before(_CUSTOMER, stored[event_id]) == {**_CUSTOMER, **recorded}
    assert stored["evt_created"] is None

    # Before 2015-01-26 the rewritten event shows its hashes whole, as recorded.
    event: JsonObject = {
        "object": "event",
        "id": "evt_hashes",
        "data": {"object": _CUSTOMER, "previous_attributes": stored["evt_hashes"]},
        "request": None,
        "type": "customer.updated",
    }
    data = render_event(event, "2015-01-11")["data"]
    assert isinstance(data, dict)
    assert data["previous_attributes"] == EVENTS[0][1]


def test_the_downgrade_gives_the_hashes_back_whole(scratch_core: str) -> None:
    upgrade("core", scratch_core, _BEFORE)
    _insert_events(scratch_core)
    recorded = _stored(scratch_core)
    upgrade("core", scratch_core, _AFTER)
    command.downgrade(alembic_config("core", scratch_core), _BEFORE)
    assert _stored(scratch_core) == recorded
