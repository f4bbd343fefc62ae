"""Core migration 0090 indexes charges by their payment method, for the conversion of the card
fingerprints they show to rewrite one payment method's charges without a scan of the account's;
the downgrade drops the index."""

from collections.abc import Iterator

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

_BEFORE = "0089_isk_amounts_in_hundredths"
_AFTER = "0090_charges_by_payment_method"
_INDEX = (
    "SELECT i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i"
    " JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'ix_charges_payment_method'"
)


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "charges_by_payment_method") as url:
        yield url


def test_charges_are_indexed_by_payment_method_and_a_downgrade_drops_the_index(
    scratch_core: str,
) -> None:
    upgrade("core", scratch_core, _BEFORE)
    with psycopg.connect(scratch_core) as db:
        assert db.execute(_INDEX).fetchall() == []

    upgrade("core", scratch_core, _AFTER)
    with psycopg.connect(scratch_core) as db:
        [(valid, definition)] = db.execute(_INDEX).fetchall()
    assert valid
    assert definition.endswith("ON public.charges USING btree (payment_method_id)")

    command.downgrade(alembic_config("core", scratch_core), _BEFORE)
    with psycopg.connect(scratch_core) as db:
        assert db.execute(_INDEX).fetchall() == []
