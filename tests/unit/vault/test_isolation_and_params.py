"""Vault isolation in the supervisor's child environments, and card params parsed as secrets."""

import pytest

from remit.config import environment_for
from remit.core.secrets import Secret
from remit.rest.params import ParamError, Schema
from remit.rest.resources.cards import raw_card_fields

PARENT_ENV = {
    "DATABASE_URL": "postgresql://core",
    "ACQUIRER_DATABASE_URL": "postgresql://acquirer",
    "VAULT_DATABASE_URL": "postgresql://vault",
    "REMIT_VAULT_KEYS": "{}",
    "REMIT_VAULT_PORT": "7422",
    "PATH": "/usr/bin",
}


@pytest.mark.parametrize("role", ["api", "core", "worker", "acquirer"])
def test_no_process_but_the_vault_gets_its_database_or_keys(role: str) -> None:
    env = environment_for(role, PARENT_ENV)
    assert "VAULT_DATABASE_URL" not in env
    assert "REMIT_VAULT_KEYS" not in env
    assert env["REMIT_VAULT_PORT"] == "7422"  # everyone may still call the vault


def test_the_vault_gets_its_own_settings_and_no_other_database() -> None:
    env = environment_for("vault", PARENT_ENV)
    assert env["VAULT_DATABASE_URL"] == "postgresql://vault"
    assert env["REMIT_VAULT_KEYS"] == "{}"
    assert "DATABASE_URL" not in env
    assert "ACQUIRER_DATABASE_URL" not in env


def test_card_numbers_and_cvcs_are_parsed_into_secrets() -> None:
    parsed = Schema(raw_card_fields()).parse(
        {"number": "4242424242424242", "cvc": "123", "exp_month": "12", "exp_year": "2030"}
    )
    assert parsed["number"] == Secret("4242424242424242")
    assert "4242424242424242" not in repr(parsed)
    assert "123" not in repr(parsed)


def test_an_oversized_card_number_is_refused_without_being_echoed() -> None:
    number = "4242424242424242" * 3
    with pytest.raises(ParamError) as caught:
        Schema(raw_card_fields()).parse({"number": number})
    assert caught.value.param == "number"
    assert "4242424242424242" not in caught.value.message
