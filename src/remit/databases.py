"""Resolve which PostgreSQL databases the platform uses, starting embedded ones where needed.

Anything without an external URL (`DATABASE_URL`, `VAULT_DATABASE_URL`,
`ACQUIRER_DATABASE_URL`) lives on an embedded cluster under the data directory: the core and
the acquirer's databases on one, the vault's on its own.
"""

from dataclasses import dataclass, field

from remit.config import PlatformConfig
from remit.storage.embedded import CORE_CLUSTER, VAULT_CLUSTER, EmbeddedCluster, start_cluster
from remit.storage.migrate import upgrade

CORE_DATABASE = "remit_core"
VAULT_DATABASE = "remit_vault"
ACQUIRER_DATABASE = "remit_acquirer"


@dataclass
class ResolvedDatabases:
    config: PlatformConfig
    clusters: list[EmbeddedCluster] = field(default_factory=list)

    def stop_embedded(self) -> None:
        for cluster in self.clusters:
            cluster.stop()
        self.clusters.clear()


def resolve_databases(config: PlatformConfig) -> ResolvedDatabases:
    clusters: list[EmbeddedCluster] = []
    core_url, acquirer_url = config.database_url, config.acquirer_database_url
    if core_url is None or acquirer_url is None:
        core_cluster = start_cluster(config.data_dir / CORE_CLUSTER)
        clusters.append(core_cluster)
        if core_url is None:
            core_cluster.ensure_database(CORE_DATABASE)
            core_url = core_cluster.url(CORE_DATABASE)
        if acquirer_url is None:
            core_cluster.ensure_database(ACQUIRER_DATABASE)
            acquirer_url = core_cluster.url(ACQUIRER_DATABASE)
    vault_url = config.vault_database_url
    if vault_url is None:
        vault_cluster = start_cluster(config.data_dir / VAULT_CLUSTER)
        clusters.append(vault_cluster)
        vault_cluster.ensure_database(VAULT_DATABASE)
        vault_url = vault_cluster.url(VAULT_DATABASE)
    return ResolvedDatabases(config.with_databases(core_url, vault_url, acquirer_url), clusters)


def migrate_all(config: PlatformConfig) -> None:
    upgrade("core", config.require_database_url())
    upgrade("vault", config.require_vault_database_url())
    upgrade("acquirer", config.require_acquirer_database_url())
