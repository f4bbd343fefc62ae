"""Alembic environment for the vault database."""

from alembic import context
from sqlalchemy import create_engine, pool

url = context.config.get_main_option("sqlalchemy.url")
assert url is not None
# Serialise concurrent migrators (several processes starting at once) on an advisory lock.
_LOCK_KEY = 3913809066

engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    connection.exec_driver_sql(f"SELECT pg_advisory_lock({_LOCK_KEY})")
    # The lock is the session's and outlives this commit; ending the transaction the lock
    # statement began lets each migration run in a transaction of its own.
    connection.commit()
    try:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        connection.exec_driver_sql(f"SELECT pg_advisory_unlock({_LOCK_KEY})")
        connection.commit()
