"""An IP address has one spelling in value lists, payments' signals and velocity counters."""

from datetime import UTC, datetime

import pytest

from remit.core.errors import RemitError
from remit.payment_methods.domain import client_ip_address
from remit.payments.charges import CardSnapshot
from remit.payments.ports import AttemptFacts
from remit.radar.domain import ItemType
from remit.radar.grpc import signals_from_message
from remit.radar.ip_addresses import canonical_ip
from remit.radar.rules import RuleSyntaxError, parse_predicate
from remit.radar.service import _filter_key, normalised_value
from remit.radar.signals import Velocity, build_signals, velocity_keys
from remit.radar.velocity import Dimension
from remit_api.radar.v1 import radar_pb2 as rpb

CARD = CardSnapshot("visa", "4242", 12, 2034, fingerprint="fp_1")


def facts(metadata: dict[str, str]) -> AttemptFacts:
    return AttemptFacts(
        "acct_1", "pi_1", "ch_1", 1000, "usd", CARD, datetime.now(UTC), metadata=metadata
    )


@pytest.mark.parametrize(
    ("sent", "canonical"),
    [
        ("203.0.113.5", "203.0.113.5"),
        (" 203.0.113.5 ", "203.0.113.5"),
        ("::ffff:203.0.113.5", "203.0.113.5"),
        ("::FFFF:cb00:7105", "203.0.113.5"),
        ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("2001:db8:0:0::1", "2001:db8::1"),
    ],
)
def test_every_spelling_of_an_address_is_the_one_a_list_stores(sent: str, canonical: str) -> None:
    assert canonical_ip(sent) == canonical
    assert normalised_value(ItemType.IP_ADDRESS, sent) == canonical
    # A token's client_ip too, for an address sent without the spaces a list item may have.
    assert client_ip_address(sent.strip()) == canonical
    signals = build_signals(facts({"ip_address": sent}), Velocity({}))
    assert signals["ip_address"] == canonical
    assert velocity_keys(facts({"ip": sent}))[Dimension.IP] == canonical


@pytest.mark.parametrize("sent", ["not an ip", "203.0.113", "2001:db8::1::2"])
def test_something_that_is_not_an_ip_is_no_ip_and_counts_for_none(sent: str) -> None:
    assert canonical_ip(sent) is None
    assert build_signals(facts({"ip_address": sent}), Velocity({}))["ip_address"] is None
    assert Dimension.IP not in velocity_keys(facts({"ip_address": sent}))
    with pytest.raises(RemitError):
        normalised_value(ItemType.IP_ADDRESS, sent)


def test_a_dry_run_compares_its_ip_as_a_payment_does() -> None:
    message = rpb.AttemptSignals(amount=1000, currency="usd", ip_address="::ffff:203.0.113.5")
    signals, _ = signals_from_message(message)
    assert signals["ip_address"] == "203.0.113.5"
    assert signals_from_message(rpb.AttemptSignals(ip_address="nope"))[0]["ip_address"] is None


ZONED = ["fe80::1%eth0", " fe80::1%2 ", "::ffff:203.0.113.5%eth0"]


@pytest.mark.parametrize("sent", ZONED)
def test_an_address_with_a_zone_is_no_clients_address_anywhere(sent: str) -> None:
    # The zone names an interface of the machine that saw the address: kept, it compares with
    # nothing; stripped, two hosts on different links would be one client.
    assert canonical_ip(sent) is None
    with pytest.raises(RemitError) as item:
        normalised_value(ItemType.IP_ADDRESS, sent)
    assert item.value.param == "value"
    assert "zone" in item.value.message
    with pytest.raises(RemitError) as token:
        client_ip_address(sent.strip())
    assert (token.value.param, "zone" in token.value.message) == ("client_ip", True)
    with pytest.raises(RuleSyntaxError, match="zone"):
        parse_predicate(f":ip_address: = '{sent.strip()}'")
    # A payment's or a dry run's IP spelt so is no IP: in no list, counted for none.
    assert build_signals(facts({"ip_address": sent}), Velocity({}))["ip_address"] is None
    assert Dimension.IP not in velocity_keys(facts({"ip": sent}))
    dry_run = rpb.AttemptSignals(amount=1000, currency="usd", ip_address=sent)
    assert signals_from_message(dry_run)[0]["ip_address"] is None
    # Nor does a list filter find a value no list can hold.
    assert _filter_key(ItemType.IP_ADDRESS, sent) is None


def test_the_bare_link_local_address_is_still_an_address() -> None:
    assert canonical_ip("fe80::1") == "fe80::1"
    assert normalised_value(ItemType.IP_ADDRESS, "FE80::1") == "fe80::1"
