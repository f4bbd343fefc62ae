"""Alembic environment for the vault database."""

from remit.storage.migration_env import run_migrations_online

# Serialises concurrent migrators of this database (several processes starting at once).
_LOCK_KEY = 3913809066

run_migrations_online(_LOCK_KEY)
