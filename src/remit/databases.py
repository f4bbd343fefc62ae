"""Resolve which PostgreSQL databases the platform uses, starting embedded ones where needed.

Anything without an external URL (`DATABASE_URL`, `VAULT_DATABASE_URL`,
`ACQUIRER_DATABASE_URL`) lives on an embedded cluster under the data directory: the core and
the acquirer's databases on one, the vault's on its own.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from remit.command_exits import CommandRefusedError, summary
from remit.config import ConfigError, PlatformConfig
from remit.storage.driver_errors import database_unavailable
from remit.storage.embedded import CORE_CLUSTER, VAULT_CLUSTER, EmbeddedCluster, start_cluster
from remit.storage.migrate import TREES, SchemaRevisions, schema_revisions, upgrade
from remit.storage.migration_locks import MigrationLockTimeoutError
from remit.storage.migration_stops import MigrationStoppedError
from remit.storage.reachability import (
    DatabasesUnavailableError,
    PlatformDatabase,
    check_all_reachable,
    failure_of,
    platform_databases,
)
from remit.storage.schema_check import swapped_setting

CORE_DATABASE = "remit_core"
VAULT_DATABASE = "remit_vault"
ACQUIRER_DATABASE = "remit_acquirer"

DatabaseName = Literal["core", "vault", "acquirer"]
ALL_DATABASES: Final[tuple[DatabaseName, ...]] = ("core", "vault", "acquirer")


@dataclass
class ResolvedDatabases:
    config: PlatformConfig
    clusters: list[EmbeddedCluster] = field(default_factory=list)

    def stop_embedded(self) -> None:
        for cluster in self.clusters:
            cluster.stop()
        self.clusters.clear()


def resolve_databases(
    config: PlatformConfig,
    needed: tuple[DatabaseName, ...] = ALL_DATABASES,
    stopping: Callable[[], bool] = lambda: False,
) -> ResolvedDatabases:
    """The databases `config` names, an embedded server started for those of `needed` it does
    not (a command that reads one database starts no server for the others, whose URLs stay
    unset): an `EmbeddedDatabaseError` when one does not start (the ones started before it
    stopped). Once `stopping()` says so, no further server is started, and the config returned
    is left incomplete: the caller, asked to stop, uses none of it."""
    resolved = ResolvedDatabases(config)
    try:
        resolved.config = _with_embedded_databases(config, resolved.clusters, needed, stopping)
    except BaseException:
        resolved.stop_embedded()
        raise
    return resolved


def _with_embedded_databases(
    config: PlatformConfig,
    clusters: list[EmbeddedCluster],
    needed: tuple[DatabaseName, ...],
    stopping: Callable[[], bool],
) -> PlatformConfig:
    """`config` with a URL on an embedded server for each database of `needed` it has none
    for; each server started is added to `clusters` as soon as it runs."""
    core_url, acquirer_url = config.database_url, config.acquirer_database_url
    embed_core = core_url is None and "core" in needed
    embed_acquirer = acquirer_url is None and "acquirer" in needed
    if embed_core or embed_acquirer:
        core_cluster = start_cluster(config.data_dir / CORE_CLUSTER)
        clusters.append(core_cluster)
        if embed_core:
            core_cluster.ensure_database(CORE_DATABASE)
            core_url = core_cluster.url(CORE_DATABASE)
        if embed_acquirer:
            core_cluster.ensure_database(ACQUIRER_DATABASE)
            acquirer_url = core_cluster.url(ACQUIRER_DATABASE)
    vault_url = config.vault_database_url
    if stopping():
        return config
    if vault_url is None and "vault" in needed:
        vault_cluster = start_cluster(config.data_dir / VAULT_CLUSTER)
        clusters.append(vault_cluster)
        vault_cluster.ensure_database(VAULT_DATABASE)
        vault_url = vault_cluster.url(VAULT_DATABASE)
    return config.with_databases(core_url, vault_url, acquirer_url)


class MigrationFailedError(Exception):
    """A database's migrations failed for a reason none of the others names (a migration that
    met data it did not expect, Alembic refusing the revision it found): starting again
    unchanged fails the same way. The message is one line naming the database, never its
    password; the failure it was raised from keeps the traceback."""


def migrate_all(config: PlatformConfig) -> list[str]:
    """Check that every database can be reached (a `DatabasesUnavailableError` naming each
    that cannot), then apply each one's pending migrations; what `migrate` says of those it
    left alone."""
    return migrate(platform_databases(config))


def migrate(databases: Sequence[PlatformDatabase]) -> list[str]:
    """Apply each database's pending migrations, but leave alone one a newer remit version
    migrated (at a revision this version does not know): this version's processes run on the
    newer schema (`remit.storage.schema_check`), as while an upgrade rolls through, or after
    one is rolled back. A line for each left alone, for the caller to say; a
    `MigrationFailedError` for a failure no other error names."""
    check_all_reachable(databases)
    # Every database is checked for another's schema before any is migrated: with two settings
    # swapped, migrating the first would build a second schema beside the other's.
    for database in databases:
        swapped = swapped_setting(database, _revisions_of(database).current)
        if swapped is not None:
            raise ConfigError(swapped)  # a setting to correct, as for one database named twice
    left_alone: list[str] = []
    for database in databases:
        tree = next(tree for tree in TREES if tree == database.name)
        try:
            revisions = schema_revisions(tree, database.url)
            if revisions.current and not revisions.known:
                left_alone.append(_ahead(database, revisions))
                continue
            upgrade(tree, database.url)
        except (MigrationLockTimeoutError, MigrationStoppedError):
            raise  # their messages name the transaction in the way, or what to decide
        except Exception as error:
            if database_unavailable(error):
                # It was there a moment ago: it went away (a restart, the network) part-way.
                raise DatabasesUnavailableError([failure_of(database, error)]) from error
            raise MigrationFailedError(
                f"the migrations of {database.described()} failed: {summary(error)}"
            ) from error
    return left_alone


def _revisions_of(database: PlatformDatabase) -> SchemaRevisions:
    tree = next(tree for tree in TREES if tree == database.name)
    try:
        return schema_revisions(tree, database.url)
    except Exception as error:
        if database_unavailable(error):
            raise DatabasesUnavailableError([failure_of(database, error)]) from error
        raise MigrationFailedError(
            f"the schema revision of {database.described()} could not be read: {summary(error)}"
        ) from error


def _ahead(database: PlatformDatabase, revisions: SchemaRevisions) -> str:
    return (
        f"{database.described()} is at schema revision {', '.join(revisions.current)}, newer "
        f"than this remit version's {', '.join(revisions.head)}: left as it is (a newer "
        "version migrated it; this one runs on it)"
    )


def require_at_head(databases: Sequence[PlatformDatabase], command: str) -> None:
    """For a command that must leave the schema as it finds it (`remit ledger verify`, an
    audit, which a newer remit must not turn into a migration of production): check that
    every database can be reached, then refuse (`CommandRefusedError`, exit 2) unless each
    one's schema is already at this version's head. Never migrates."""
    check_all_reachable(databases)
    for database in databases:
        tree = next(tree for tree in TREES if tree == database.name)
        try:
            revisions = schema_revisions(tree, database.url)
        except Exception as error:
            if not database_unavailable(error):
                raise
            raise DatabasesUnavailableError([failure_of(database, error)]) from error
        swapped = swapped_setting(database, revisions.current)
        if swapped is not None:
            raise CommandRefusedError(swapped)
        if not revisions.at_head:
            raise CommandRefusedError(_not_at_head(database, revisions, command))


def _not_at_head(database: PlatformDatabase, revisions: SchemaRevisions, command: str) -> str:
    where = f"the {database.name} database ({database.setting} {database.location})"
    head = ", ".join(revisions.head)
    unchanged = f"remit {command} never changes the schema"
    if not revisions.current:
        return f"{where} has no remit schema yet: run `remit migrate` first; {unchanged}"
    current = ", ".join(revisions.current)
    if not revisions.known:
        return (
            f"{where} is at schema revision {current}, which this remit version does not know "
            f"(its newest is {head}): run this command with the remit version that migrated "
            f"it; {unchanged}"
        )
    return (
        f"{where} is at schema revision {current}, behind this remit version's {head}: run "
        f"`remit migrate` first, or this command with the remit version that migrated it; "
        f"{unchanged}"
    )
