"""The worker: background jobs claimed from PostgreSQL with SKIP LOCKED."""
