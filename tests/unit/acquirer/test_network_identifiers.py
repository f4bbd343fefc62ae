"""The random identifiers an approved authorization carries: shape and spread."""

from remit.acquirer.service import _authorization_code, _network_transaction_id

DRAWS = 3000
CODE_ALPHABET = set("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ")


def test_network_transaction_ids_are_fifteen_digits_each_taking_every_value() -> None:
    ids = [_network_transaction_id() for _ in range(DRAWS)]
    assert all(len(tid) == 15 and tid.isdigit() for tid in ids)
    # Leading zeros included: every position takes all ten digits.
    for position in range(15):
        assert {tid[position] for tid in ids} == set("0123456789")


def test_authorization_codes_are_six_characters_each_taking_every_value() -> None:
    codes = [_authorization_code() for _ in range(DRAWS)]
    assert all(len(code) == 6 and set(code) <= CODE_ALPHABET for code in codes)
    for position in range(6):
        assert {code[position] for code in codes} == CODE_ALPHABET
