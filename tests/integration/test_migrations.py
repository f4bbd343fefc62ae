"""The migrations build exactly the schema the code's table definitions describe."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

import remit.accounts.tables
import remit.acquirer.tables
import remit.customers.tables
import remit.ledger.tables
import remit.payment_methods.tables
import remit.payments.tables
import remit.radar.tables
import remit.webhooks.tables
import remit.worker.tables
from remit.acquirer.tables import acquirer_metadata
from remit.storage.embedded import to_sqlalchemy_url
from remit.storage.schema import core_metadata
from tests.support.postgres import WorkerDatabases


def test_core_migrations_match_the_table_definitions(databases: WorkerDatabases) -> None:
    assert remit.accounts.tables.accounts.name in core_metadata.tables
    assert remit.webhooks.tables.events.name in core_metadata.tables
    assert remit.worker.tables.jobs.name in core_metadata.tables
    assert remit.ledger.tables.ledger_postings.name in core_metadata.tables
    assert remit.radar.tables.radar_rules.name in core_metadata.tables
    engine = create_engine(to_sqlalchemy_url(databases.core_url))
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), core_metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_acquirer_migrations_match_the_table_definitions(databases: WorkerDatabases) -> None:
    assert remit.acquirer.tables.operations.name in acquirer_metadata.tables
    engine = create_engine(to_sqlalchemy_url(databases.acquirer_url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            differences = compare_metadata(context, acquirer_metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_vault_migrations_match_the_vault_table_definitions(databases: WorkerDatabases) -> None:
    from remit.vault.tables import vault_metadata

    engine = create_engine(to_sqlalchemy_url(databases.vault_url))
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), vault_metadata)
    finally:
        engine.dispose()
    assert "cards" in vault_metadata.tables
    assert differences == []


def test_every_migration_tree_has_exactly_one_head() -> None:
    from alembic.script import ScriptDirectory

    from remit.storage.migrate import TREES, alembic_config

    for tree in TREES:
        heads = ScriptDirectory.from_config(alembic_config(tree, "postgresql://x/y")).get_heads()
        assert len(heads) == 1, (tree, heads)
