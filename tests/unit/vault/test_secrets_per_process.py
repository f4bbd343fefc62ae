"""Each process `remit serve` starts gets the database URLs and keys of its own role, no other:
taking over one (the api faces the internet) hands out nothing it does not use."""

import pytest

from remit.config import environment_for

SECRETS = {
    "DATABASE_URL": "postgresql://remit:core-password@db/remit",
    "ACQUIRER_DATABASE_URL": "postgresql://acq:acquirer-password@db/acquirer",
    "VAULT_DATABASE_URL": "postgresql://vault:vault-password@vaultdb/vault",
    "REMIT_VAULT_KEYS": "{}",
    "REMIT_VAULT_KEY_FILE": "/etc/remit/vault-keys.json",
    "REMIT_VAULT_DESTINATIONS": "acquirer=127.0.0.1:7423",
    "REMIT_LEDGER_CHECKPOINT_KEY": "k" * 32,
    "REMIT_LEDGER_CHECKPOINT_KEY_FILE": "/etc/remit/checkpoint-key",
    "REMIT_LEDGER_CHECKPOINT_PREVIOUS_KEYS": "e" * 32,
    "REMIT_LEDGER_CHECKPOINT_PREVIOUS_KEYS_FILE": "/etc/remit/previous-keys",
    # libpq's own: a password and the files it finds passwords in.
    "PGPASSWORD": "libpq-password",
    "PGPASSFILE": "/etc/remit/pgpass",
    "PGSERVICEFILE": "/etc/remit/pg_service.conf",
}
# What every process needs, secret or not: where the others are, and mutual TLS (each presents
# its own certificate on every call it makes or answers).
SHARED = {
    "PATH": "/usr/bin",
    "REMIT_DATA_DIR": "/var/lib/remit",
    "REMIT_CORE_PORT": "7421",
    "REMIT_VAULT_PORT": "7422",
    "REMIT_INTERNAL_TLS_CERT": "/etc/remit/tls/cert.pem",
    "REMIT_INTERNAL_TLS_KEY": "/etc/remit/tls/key.pem",
    "REMIT_INTERNAL_TLS_CA": "/etc/remit/tls/ca.pem",
}
LIBPQ = {"PGPASSWORD", "PGPASSFILE", "PGSERVICEFILE"}


@pytest.mark.parametrize(
    ("role", "given"),
    [
        ("api", set()),
        ("core", {"DATABASE_URL"} | LIBPQ),
        (
            "worker",
            {"DATABASE_URL", "REMIT_LEDGER_CHECKPOINT_KEY", "REMIT_LEDGER_CHECKPOINT_KEY_FILE"}
            | LIBPQ,
        ),
        (
            "vault",
            {
                "VAULT_DATABASE_URL",
                "REMIT_VAULT_KEYS",
                "REMIT_VAULT_KEY_FILE",
                "REMIT_VAULT_DESTINATIONS",
            }
            | LIBPQ,
        ),
        ("acquirer", {"ACQUIRER_DATABASE_URL"} | LIBPQ),
        # A role nobody listed is given none of them.
        ("unlisted", set()),
    ],
)
def test_each_process_gets_only_its_own_databases_and_keys(role: str, given: set[str]) -> None:
    env = environment_for(role, SECRETS | SHARED)
    assert set(env) & set(SECRETS) == given
    for name in given:
        assert env[name] == SECRETS[name]
    for name, value in SHARED.items():
        assert env[name] == value, name


def test_the_api_holds_no_database_password_anywhere_in_its_environment() -> None:
    env = environment_for("api", SECRETS | SHARED)
    for password in ("core-password", "acquirer-password", "vault-password", "libpq-password"):
        assert not any(password in value for value in env.values()), password
