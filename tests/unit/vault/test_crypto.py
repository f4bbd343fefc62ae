"""Envelope encryption: round trips, tamper and swap detection, re-wrapping, retired keys."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from remit.core.errors import ErrorKind
from remit.core.secrets import Secret
from remit.vault.crypto import (
    VaultCryptoError,
    fingerprint,
    new_key_ring,
    open_card,
    rewrap,
    seal_card,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NUMBER = Secret("4242424242424242")


def test_a_sealed_card_opens_to_its_number_and_cvc_and_holds_neither_in_clear() -> None:
    ring = new_key_ring("card-kek", NOW)
    sealed = seal_card(ring, "vtok_a", NUMBER, Secret("123"))
    blob = sealed.wrapped_data_key + sealed.number_ciphertext + (sealed.cvc_ciphertext or b"")
    assert b"4242424242424242" not in blob
    opened = open_card(ring, "vtok_a", sealed)
    assert opened.number == NUMBER
    assert opened.cvc == Secret("123")


def test_every_card_gets_its_own_data_key() -> None:
    ring = new_key_ring("card-kek", NOW)
    first = seal_card(ring, "vtok_a", NUMBER, None)
    second = seal_card(ring, "vtok_a", NUMBER, None)
    assert first.wrapped_data_key != second.wrapped_data_key
    assert first.number_ciphertext != second.number_ciphertext


def test_a_flipped_bit_is_an_error_not_garbage() -> None:
    ring = new_key_ring("card-kek", NOW)
    sealed = seal_card(ring, "vtok_a", NUMBER, None)
    damaged = bytearray(sealed.number_ciphertext)
    damaged[-1] ^= 1
    with pytest.raises(VaultCryptoError) as caught:
        open_card(ring, "vtok_a", replace(sealed, number_ciphertext=bytes(damaged)))
    assert caught.value.kind is ErrorKind.DATA_LOSS
    assert caught.value.code == "vault_ciphertext_invalid"


def test_a_ciphertext_moved_to_another_token_does_not_decrypt() -> None:
    ring = new_key_ring("card-kek", NOW)
    sealed = seal_card(ring, "vtok_a", NUMBER, None)
    with pytest.raises(VaultCryptoError):
        open_card(ring, "vtok_b", sealed)


def test_rewrapping_moves_the_data_key_to_the_current_version_without_changing_the_number() -> None:
    ring = new_key_ring("card-kek", NOW)
    sealed = seal_card(ring, "vtok_a", NUMBER, None)
    rotated = ring.with_new_version(NOW)
    moved = rewrap(rotated, "vtok_a", sealed)
    assert (sealed.kek_version, moved.kek_version) == (1, 2)
    assert moved.number_ciphertext == sealed.number_ciphertext
    retired = rotated.with_minimum(2)
    assert open_card(retired, "vtok_a", moved).number == NUMBER
    with pytest.raises(VaultCryptoError) as caught:
        open_card(retired, "vtok_a", sealed)
    assert caught.value.code == "vault_key_retired"


def test_fingerprints_are_keyed_stable_and_distinct() -> None:
    ring = new_key_ring("card-kek", NOW)
    other_ring = new_key_ring("card-kek", NOW)
    assert fingerprint(ring, NUMBER) == fingerprint(ring, Secret("4242424242424242"))
    assert fingerprint(ring, NUMBER) != fingerprint(ring, Secret("5555555555554444"))
    assert fingerprint(ring, NUMBER) != fingerprint(other_ring, NUMBER)
    assert len(fingerprint(ring, NUMBER)) == 16


def test_key_rings_never_show_key_material_in_their_repr() -> None:
    ring = new_key_ring("card-kek", NOW)
    shown = repr(ring) + repr(ring.current)
    assert ring.current.material.hex() not in shown
    assert str(ring.current.material) not in shown
