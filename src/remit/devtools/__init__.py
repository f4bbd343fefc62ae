"""Developer tooling that ships with remit (code generation)."""
