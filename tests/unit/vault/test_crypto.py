"""Envelope encryption: round trips, tamper and swap detection, re-wrapping, retired keys, and
CVCs sealed under hourly CVC keys (and those sealed before, under the card's data key)."""

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from remit.core.errors import ErrorKind
from remit.core.secrets import Secret
from remit.vault.crypto import (
    CVC_KEY_MARKER,
    CardBinding,
    FingerprintScope,
    KeyRing,
    SealedCard,
    SealFormat,
    VaultCryptoError,
    cvc_key_hour,
    cvc_key_hour_start,
    fingerprint,
    fingerprint_in_scope,
    new_key_ring,
    open_card,
    open_cvc_under_cvc_key,
    platform_fingerprint,
    rewrap,
    seal_card,
    sealed_cvc_hour,
    verify_binding,
)
from tests.support.vault import (
    cvc_sealed_before_cvc_keys,
    sealed_account_bound,
    sealed_token_bound,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = cvc_key_hour(NOW)
NUMBER = Secret("4242424242424242")
# The digest of a card's metadata (`remit.vault.card_metadata`): any 32 bytes will do here.
META = bytes(range(32))


def _ring_with_cvc_key() -> KeyRing:
    return new_key_ring("card-kek", NOW).with_cvc_keys([HOUR], NOW)


def _sealed_with_cvc(ring: KeyRing, card: str = "vtok_a") -> SealedCard:
    return seal_card(
        ring, card, "acct_1", NUMBER, Secret("123"), ring.cvc_keys[HOUR], metadata=META
    )


def test_a_sealed_card_opens_to_its_number_and_cvc_and_holds_neither_in_clear() -> None:
    ring = _ring_with_cvc_key()
    sealed = _sealed_with_cvc(ring)
    blob = sealed.wrapped_data_key + sealed.number_ciphertext + (sealed.cvc_ciphertext or b"")
    assert b"4242424242424242" not in blob
    opened = open_card(ring, "vtok_a", "acct_1", sealed, metadata=META)
    assert opened.number == NUMBER
    assert opened.cvc == Secret("123")


def test_every_card_gets_its_own_data_key() -> None:
    ring = new_key_ring("card-kek", NOW)
    first = seal_card(ring, "vtok_a", "acct_1", NUMBER, None, metadata=META)
    second = seal_card(ring, "vtok_a", "acct_1", NUMBER, None, metadata=META)
    assert first.wrapped_data_key != second.wrapped_data_key
    assert first.number_ciphertext != second.number_ciphertext


def test_a_flipped_bit_is_an_error_not_garbage() -> None:
    ring = new_key_ring("card-kek", NOW)
    sealed = seal_card(ring, "vtok_a", "acct_1", NUMBER, None, metadata=META)
    damaged = bytearray(sealed.number_ciphertext)
    damaged[-1] ^= 1
    with pytest.raises(VaultCryptoError) as caught:
        open_card(
            ring,
            "vtok_a",
            "acct_1",
            replace(sealed, number_ciphertext=bytes(damaged)),
            metadata=META,
        )
    assert caught.value.kind is ErrorKind.DATA_LOSS
    assert caught.value.code == "vault_ciphertext_invalid"


def test_a_ciphertext_moved_to_another_token_does_not_decrypt() -> None:
    ring = new_key_ring("card-kek", NOW)
    sealed = seal_card(ring, "vtok_a", "acct_1", NUMBER, None, metadata=META)
    with pytest.raises(VaultCryptoError):
        open_card(ring, "vtok_b", "acct_1", sealed, metadata=META)


def test_a_card_given_to_another_account_does_not_decrypt() -> None:
    ring = _ring_with_cvc_key()
    sealed = _sealed_with_cvc(ring)
    assert sealed.seal_format is SealFormat.METADATA_BOUND
    for account in ("acct_2", "acct_", "acct_1/"):
        with pytest.raises(VaultCryptoError) as caught:
            open_card(ring, "vtok_a", account, sealed, metadata=META)
        assert caught.value.code == "vault_ciphertext_invalid"
        assert NUMBER.reveal() not in str(caught.value)
    # Nor once its row claims the format of the cards sealed to their token alone, or to
    # their account and token, which would leave the account or metadata unchecked.
    for earlier in (SealFormat.TOKEN_BOUND, SealFormat.ACCOUNT_BOUND):
        with pytest.raises(VaultCryptoError):
            open_card(ring, "vtok_a", "acct_2", replace(sealed, seal_format=earlier), metadata=META)
    with pytest.raises(VaultCryptoError):
        rewrap(ring, "vtok_a", "acct_2", sealed, metadata=META)


def test_a_binding_check_tells_a_card_given_to_another_account_without_opening_it() -> None:
    ring = _ring_with_cvc_key()
    sealed = _sealed_with_cvc(ring)
    verify_binding(ring, "vtok_a", "acct_1", sealed, metadata=META)
    for token, account in (("vtok_a", "acct_2"), ("vtok_b", "acct_1")):
        with pytest.raises(VaultCryptoError) as caught:
            verify_binding(ring, token, account, sealed, metadata=META)
        assert caught.value.kind is ErrorKind.DATA_LOSS
    # The number is not read: a damaged one passes, as only its data key is checked.
    damaged = replace(sealed, number_ciphertext=b"\x00" * len(sealed.number_ciphertext))
    verify_binding(ring, "vtok_a", "acct_1", damaged, metadata=META)


def test_a_seal_format_the_vault_does_not_know_opens_nothing() -> None:
    assert SealFormat.stored(2) is SealFormat.ACCOUNT_BOUND
    assert SealFormat.stored(3) is SealFormat.METADATA_BOUND
    assert SealFormat.stored(4) is SealFormat.UNRECOGNIZED
    ring = _ring_with_cvc_key()
    sealed = replace(_sealed_with_cvc(ring), seal_format=SealFormat.stored(4))
    for attempt in (
        lambda: open_card(ring, "vtok_a", "acct_1", sealed, metadata=META),
        lambda: verify_binding(ring, "vtok_a", "acct_1", sealed, metadata=META),
        lambda: rewrap(ring, "vtok_a", "acct_1", sealed, metadata=META),
    ):
        with pytest.raises(VaultCryptoError) as caught:
            attempt()
        assert caught.value.code == "vault_ciphertext_invalid"


def test_the_account_and_token_are_told_apart_whatever_characters_they_hold() -> None:
    ring = new_key_ring("card-kek", NOW)
    sealed = seal_card(ring, "b/c", "a", NUMBER, None, metadata=META)
    with pytest.raises(VaultCryptoError):
        open_card(ring, "c", "a/b", sealed, metadata=META)


def test_a_card_sealed_to_its_token_alone_still_opens_for_any_account_until_resealed() -> None:
    ring = _ring_with_cvc_key()
    old = sealed_token_bound(ring, "vtok_a", NUMBER.reveal(), "123", ring.cvc_keys[HOUR])
    opened = open_card(ring, "vtok_a", "acct_1", old, metadata=META)
    assert (opened.number, opened.cvc) == (NUMBER, Secret("123"))
    # What re-sealing does: the same card under a fresh data key, bound to its account.
    resealed = seal_card(
        ring, "vtok_a", "acct_1", opened.number, opened.cvc, ring.cvc_keys[HOUR], metadata=META
    )
    assert resealed.wrapped_data_key != old.wrapped_data_key
    assert open_card(ring, "vtok_a", "acct_1", resealed, metadata=META).number == NUMBER
    with pytest.raises(VaultCryptoError):
        open_card(ring, "vtok_a", "acct_2", resealed, metadata=META)


def test_a_card_bound_to_its_account_never_opens_a_cvc_sealed_under_its_data_key() -> None:
    """Only cards sealed to their token alone can hold a CVC from before CVC keys."""
    ring = _ring_with_cvc_key()
    card = seal_card(ring, "vtok_a", "acct_1", NUMBER, None, metadata=META)
    binding = CardBinding("vtok_a", "acct_1", SealFormat.METADATA_BOUND, META)
    wrapped = card.wrapped_data_key
    data_key = AESGCM(ring.current.material).decrypt(
        wrapped[:12], wrapped[12:], binding.associated("data-key", ring.name, 1)
    )
    nonce = os.urandom(12)
    under_data_key = nonce + AESGCM(data_key).encrypt(nonce, b"123", binding.associated("cvc"))
    with pytest.raises(VaultCryptoError):
        open_card(
            ring, "vtok_a", "acct_1", replace(card, cvc_ciphertext=under_data_key), metadata=META
        )


def test_rewrapping_moves_the_data_key_to_the_current_version_without_changing_the_number() -> None:
    ring = new_key_ring("card-kek", NOW)
    sealed = seal_card(ring, "vtok_a", "acct_1", NUMBER, None, metadata=META)
    rotated = ring.with_new_version(NOW)
    moved = rewrap(rotated, "vtok_a", "acct_1", sealed, metadata=META)
    assert (sealed.kek_version, moved.kek_version) == (1, 2)
    assert moved.number_ciphertext == sealed.number_ciphertext
    retired = rotated.with_minimum(2)
    assert open_card(retired, "vtok_a", "acct_1", moved, metadata=META).number == NUMBER
    with pytest.raises(VaultCryptoError) as caught:
        open_card(retired, "vtok_a", "acct_1", sealed, metadata=META)
    assert caught.value.code == "vault_key_retired"


def test_fingerprints_are_keyed_stable_and_distinct() -> None:
    ring = new_key_ring("card-kek", NOW)
    other_ring = new_key_ring("card-kek", NOW)
    visa = fingerprint(ring, "acct_1", NUMBER)
    assert visa == fingerprint(ring, "acct_1", Secret("4242424242424242"))
    assert visa != fingerprint(ring, "acct_1", Secret("5555555555554444"))
    assert visa != fingerprint(other_ring, "acct_1", NUMBER)
    assert len(visa) == 16


def test_the_same_number_has_unrelated_fingerprints_in_two_accounts() -> None:
    ring = new_key_ring("card-kek", NOW)
    in_one = fingerprint(ring, "acct_1", NUMBER)
    assert in_one != fingerprint(ring, "acct_2", NUMBER)
    # Neither is the fingerprint every account shared before (one key for all).
    assert platform_fingerprint(ring, NUMBER) not in {in_one, fingerprint(ring, "acct_2", NUMBER)}
    # The account id is length-prefixed in the key's derivation: ids that run together differ.
    assert fingerprint(ring, "acct_1", NUMBER) != fingerprint(ring, "acct_1/", NUMBER)
    assert fingerprint(ring, "", NUMBER) != fingerprint(ring, "acct_1", NUMBER)
    # A rotation adds key versions, never a fingerprint key: fingerprints do not change.
    assert fingerprint(ring.with_new_version(NOW), "acct_1", NUMBER) == in_one


def test_a_fingerprint_in_its_scope_is_the_platform_or_the_account_one() -> None:
    ring = new_key_ring("card-kek", NOW)
    assert fingerprint_in_scope(ring, FingerprintScope.ACCOUNT, "acct_1", NUMBER) == fingerprint(
        ring, "acct_1", NUMBER
    )
    assert fingerprint_in_scope(
        ring, FingerprintScope.PLATFORM, "acct_1", NUMBER
    ) == platform_fingerprint(ring, NUMBER)


def test_key_rings_never_show_key_material_in_their_repr() -> None:
    ring = new_key_ring("card-kek", NOW)
    shown = repr(ring) + repr(ring.current)
    assert ring.current.material.hex() not in shown
    assert str(ring.current.material) not in shown


def test_a_cvc_key_covers_the_hour_it_is_named_after() -> None:
    assert cvc_key_hour_start(HOUR) <= NOW < cvc_key_hour_start(HOUR + 1)
    assert cvc_key_hour(NOW + timedelta(minutes=59, seconds=59)) == HOUR
    assert cvc_key_hour(NOW + timedelta(hours=1)) == HOUR + 1
    key = _ring_with_cvc_key().cvc_keys[HOUR]
    # The last CVC it seals is stored just before the hour ends, and kept for the retention.
    assert key.last_cvc_expiry(timedelta(hours=1)) == NOW + timedelta(hours=2)


def test_a_cvc_is_sealed_under_its_hours_cvc_key_not_under_the_cards_data_key() -> None:
    ring = _ring_with_cvc_key()
    sealed = _sealed_with_cvc(ring)
    assert sealed.cvc_ciphertext is not None
    assert sealed_cvc_hour(sealed.cvc_ciphertext) == HOUR
    # A ring with every KEK version but without the CVC key opens the number, not the CVC.
    opened = open_card(ring.without_cvc_keys([HOUR]), "vtok_a", "acct_1", sealed, metadata=META)
    assert (opened.number, opened.cvc) == (NUMBER, None)


def test_a_cvc_needs_a_cvc_key_to_be_sealed() -> None:
    with pytest.raises(ValueError, match="CVC key"):
        seal_card(
            new_key_ring("card-kek", NOW), "vtok_a", "acct_1", NUMBER, Secret("123"), metadata=META
        )


def test_a_sealed_cvc_is_bound_to_its_token_and_to_its_keys_hour() -> None:
    ring = _ring_with_cvc_key().with_cvc_keys([HOUR + 1], NOW)
    sealed = _sealed_with_cvc(ring)
    other = _sealed_with_cvc(ring, "vtok_b")
    assert other.cvc_ciphertext is not None
    assert sealed.cvc_ciphertext is not None
    with pytest.raises(VaultCryptoError) as caught:
        open_card(
            ring,
            "vtok_a",
            "acct_1",
            replace(sealed, cvc_ciphertext=other.cvc_ciphertext),
            metadata=META,
        )
    assert caught.value.code == "vault_ciphertext_invalid"
    # Naming the next hour's key instead of its own: that key does not open it either.
    renamed = bytearray(sealed.cvc_ciphertext)
    renamed[len(CVC_KEY_MARKER) + 3] += 1
    assert sealed_cvc_hour(bytes(renamed)) == HOUR + 1
    with pytest.raises(VaultCryptoError):
        open_card(
            ring, "vtok_a", "acct_1", replace(sealed, cvc_ciphertext=bytes(renamed)), metadata=META
        )


def test_a_kept_cvc_ciphertext_no_longer_opens_once_its_cvc_key_is_deleted() -> None:
    """A copy of a destroyed CVC's ciphertext (the WAL, a backup) and the current key set:
    rotating, re-wrapping, retiring and removing the KEK version of the day leave the card's
    data key as it was, so only the CVC key's deletion puts the copy beyond use."""
    ring = _ring_with_cvc_key()
    sealed = _sealed_with_cvc(ring)
    kept_cvc = sealed.cvc_ciphertext
    destroyed = replace(sealed, cvc_ciphertext=None)
    rotated = ring.with_new_version(NOW)
    current = replace(
        rewrap(rotated, "vtok_a", "acct_1", destroyed, metadata=META), cvc_ciphertext=kept_cvc
    )
    ring = rotated.with_minimum(2).without_version(1)
    assert open_card(ring, "vtok_a", "acct_1", current, metadata=META).cvc == Secret("123")

    ring = ring.with_cvc_keys([HOUR + 1, HOUR + 2], NOW).without_cvc_keys([HOUR])

    assert open_card(ring, "vtok_a", "acct_1", current, metadata=META).cvc is None
    assert open_card(ring, "vtok_a", "acct_1", current, metadata=META).number == NUMBER


@pytest.mark.parametrize("cvc", ["123", "1234"])
def test_a_cvc_sealed_under_the_cards_data_key_before_cvc_keys_still_opens(cvc: str) -> None:
    ring = _ring_with_cvc_key()
    # CVCs sealed under the data key are from before the account was bound as well.
    card = sealed_token_bound(ring, "vtok_a", NUMBER.reveal())
    legacy = replace(card, cvc_ciphertext=cvc_sealed_before_cvc_keys(ring, "vtok_a", card, cvc))
    assert legacy.cvc_ciphertext is not None
    assert sealed_cvc_hour(legacy.cvc_ciphertext) is None
    assert open_card(ring, "vtok_a", "acct_1", legacy, metadata=META).cvc == Secret(cvc)
    # Even one whose random nonce begins with the marker of the CVCs sealed since.
    nonce = CVC_KEY_MARKER + os.urandom(8)
    marked = replace(
        card, cvc_ciphertext=cvc_sealed_before_cvc_keys(ring, "vtok_a", card, cvc, nonce)
    )
    assert marked.cvc_ciphertext is not None
    assert marked.cvc_ciphertext.startswith(CVC_KEY_MARKER)
    assert open_card(ring, "vtok_a", "acct_1", marked, metadata=META).cvc == Secret(cvc)


def test_cvc_keys_never_show_their_material_in_their_repr() -> None:
    ring = _ring_with_cvc_key()
    key = ring.cvc_keys[HOUR]
    shown = repr(ring) + repr(key)
    assert key.material.hex() not in shown
    assert str(key.material) not in shown
    assert str(HOUR) in shown


def test_a_card_whose_metadata_changed_is_refused_by_every_check_that_opens_or_binds_it() -> None:
    ring = _ring_with_cvc_key()
    sealed = _sealed_with_cvc(ring)
    other = bytes(reversed(META))
    for attempt in (
        lambda: open_card(ring, "vtok_a", "acct_1", sealed, metadata=other),
        lambda: verify_binding(ring, "vtok_a", "acct_1", sealed, metadata=other),
        lambda: rewrap(ring, "vtok_a", "acct_1", sealed, metadata=other),
    ):
        with pytest.raises(VaultCryptoError) as caught:
            attempt()
        assert caught.value.kind is ErrorKind.DATA_LOSS
        assert NUMBER.reveal() not in str(caught.value)
    # Its CVC is bound to the metadata as well: put back, or opened after a re-seal, for the
    # card as its row holds it.
    with pytest.raises(VaultCryptoError):
        open_cvc_under_cvc_key(
            ring,
            CardBinding("vtok_a", "acct_1", SealFormat.METADATA_BOUND, other),
            sealed.cvc_ciphertext or b"",
        )
    binding = CardBinding("vtok_a", "acct_1", SealFormat.METADATA_BOUND, META)
    assert open_cvc_under_cvc_key(ring, binding, sealed.cvc_ciphertext or b"") == Secret("123")


def test_a_metadata_bound_seal_is_never_made_without_the_digest() -> None:
    """A caller that forgot the card's metadata is a bug: it is never sealed (nor checked)
    against an empty digest."""
    ring = new_key_ring("card-kek", NOW)
    with pytest.raises(ValueError, match="digest"):
        seal_card(ring, "vtok_a", "acct_1", NUMBER, None, metadata=b"")


def test_a_card_bound_to_its_account_alone_still_opens_whatever_its_metadata_until_resealed() -> (
    None
):
    ring = _ring_with_cvc_key()
    old = sealed_account_bound(
        ring, "vtok_a", "acct_1", NUMBER.reveal(), "123", ring.cvc_keys[HOUR]
    )
    for metadata in (META, bytes(32)):
        verify_binding(ring, "vtok_a", "acct_1", old, metadata=metadata)
        opened = open_card(ring, "vtok_a", "acct_1", old, metadata=metadata)
        assert (opened.number, opened.cvc) == (NUMBER, Secret("123"))
    # Its account is checked all the same.
    with pytest.raises(VaultCryptoError):
        open_card(ring, "vtok_a", "acct_2", old, metadata=META)
    resealed = seal_card(
        ring, "vtok_a", "acct_1", opened.number, opened.cvc, ring.cvc_keys[HOUR], metadata=META
    )
    assert resealed.seal_format is SealFormat.METADATA_BOUND
    assert open_card(ring, "vtok_a", "acct_1", resealed, metadata=META).number == NUMBER
    with pytest.raises(VaultCryptoError):
        open_card(ring, "vtok_a", "acct_1", resealed, metadata=bytes(32))
