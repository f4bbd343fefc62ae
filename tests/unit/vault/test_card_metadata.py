"""The digest of a card's metadata that its seals bind: any change to one of its columns
changes it, and no two different sets of values encode alike."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from remit.vault.card_metadata import encode_fields, metadata_digest
from remit.vault.cards import Brand, Funding
from remit.vault.domain import CardSummary

SUMMARY = CardSummary(
    brand=Brand.VISA,
    last4="4242",
    exp_month=12,
    exp_year=2031,
    fingerprint="Fp0123456789abcd",
    funding=Funding.CREDIT,
    country="US",
)
BILLING: dict[str, object] = {
    "name": "Jo Example",
    "address": {"line1": "1 Main St", "postal_code": "12345", "country": "US"},
}
CREATED = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def _digest(**changes: Any) -> bytes:
    fields: dict[str, Any] = {
        "livemode": False,
        "summary": SUMMARY,
        "billing_details": BILLING,
        "created_at": CREATED,
    }
    fields.update(changes)
    return metadata_digest(**fields)


def test_the_digest_is_a_fixed_32_bytes_and_the_same_for_the_same_card() -> None:
    assert len(_digest()) == 32
    assert _digest() == _digest()
    # Billing details as a JSONB column reads them back: keys in another order.
    address = {"country": "US", "postal_code": "12345", "line1": "1 Main St"}
    reordered = {"address": address, "name": "Jo Example"}
    assert _digest(billing_details=reordered) == _digest()
    # The same instant read in another time zone.
    assert _digest(created_at=CREATED.astimezone(timezone(timedelta(hours=-5)))) == _digest()


@pytest.mark.parametrize(
    "changes",
    [
        {"livemode": True},
        {"summary": replace(SUMMARY, brand=Brand.MASTERCARD)},
        {"summary": replace(SUMMARY, last4="4243")},
        {"summary": replace(SUMMARY, exp_month=11)},
        {"summary": replace(SUMMARY, exp_year=2032)},
        {"summary": replace(SUMMARY, fingerprint="Fp0123456789abce")},
        {"summary": replace(SUMMARY, funding=Funding.DEBIT)},
        {"summary": replace(SUMMARY, country="GB")},
        {"summary": replace(SUMMARY, country="")},
        {"billing_details": {**BILLING, "name": "Jo Exampl"}},
        {"billing_details": {**BILLING, "address": {"line1": "1 Main St"}}},
        {"billing_details": {}},
        {"created_at": CREATED + timedelta(microseconds=1)},
    ],
    ids=lambda changes: next(iter(changes)) + "-" + str(len(repr(changes))),
)
def test_any_single_column_changed_changes_the_digest(changes: dict[str, Any]) -> None:
    assert _digest(**changes) != _digest()


def test_expiry_month_and_year_swapped_change_the_digest() -> None:
    swapped = replace(SUMMARY, exp_month=SUMMARY.exp_year, exp_year=SUMMARY.exp_month)
    assert _digest(summary=swapped) != _digest()


def test_the_encoding_is_unambiguous_where_values_meet() -> None:
    assert encode_fields([("a", "ab"), ("b", "c")]) != encode_fields([("a", "a"), ("b", "bc")])
    assert encode_fields([("ab", "c")]) != encode_fields([("a", "bc")])
    assert encode_fields([("a", "")]) != encode_fields([("", "a")])
    # Lengths in bytes, not characters: multi-byte characters do not shift a boundary.
    assert encode_fields([("a", "é"), ("b", "")]) != encode_fields([("a", ""), ("b", "é")])
    # Two cards whose last4 and country run together the same way differ.
    one = replace(SUMMARY, last4="424", country="2US")
    other = replace(SUMMARY, last4="4242", country="US")
    assert _digest(summary=one) != _digest(summary=other)


def test_a_creation_time_without_a_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        _digest(created_at=CREATED.replace(tzinfo=None))
