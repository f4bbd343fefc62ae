"""PostgreSQL plumbing: the embedded server, engines, migrations and unit-of-work helpers."""
