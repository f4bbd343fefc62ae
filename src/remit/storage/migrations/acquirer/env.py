"""Alembic environment for the acquirer database."""

from remit.storage.migration_env import run_migrations_online

# Serialises concurrent migrators of this database (several processes starting at once).
_LOCK_KEY = 1058560447

run_migrations_online(_LOCK_KEY)
