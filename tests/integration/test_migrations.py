"""The migrations build exactly the schema the code's table definitions describe."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

import remit.accounts.tables
import remit.ledger.tables
import remit.payments.tables
from remit.storage.embedded import to_sqlalchemy_url
from remit.storage.schema import core_metadata
from tests.support.postgres import WorkerDatabases


def test_core_migrations_match_the_table_definitions(databases: WorkerDatabases) -> None:
    assert remit.accounts.tables.accounts.name in core_metadata.tables
    assert remit.ledger.tables.ledger_postings.name in core_metadata.tables
    engine = create_engine(to_sqlalchemy_url(databases.core_url))
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), core_metadata)
    finally:
        engine.dispose()
    assert differences == []
