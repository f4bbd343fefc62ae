"""Alembic environment for the core database."""

from remit.storage.migration_env import run_migrations_online

# Serialises concurrent migrators of this database (several processes starting at once).
_LOCK_KEY = 1895254928

run_migrations_online(_LOCK_KEY)
