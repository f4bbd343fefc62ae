"""Which value lists a rule may test an attribute against.

A list's item_type says what its values are, and each is stored normalised as such (countries
upper-case, IP addresses canonical, ...). An attribute is only ever found in a list holding its
kind of value: `:email: in @blocked_countries` would never match, and its `not in` would match
every payment. A string list (case-sensitive or not) holds whatever the merchant puts in it, so
any string attribute may be tested against one.
"""

from typing import Final

from remit.radar.domain import ItemType

ANY_STRING: Final = frozenset({ItemType.STRING, ItemType.CASE_SENSITIVE_STRING})

# The attributes a typed list's values can be, by the list's item type. A card_bin list has
# none: no BIN reaches the core (see `remit.radar.service.UNSUPPORTED_ITEM_TYPES`).
TYPED_LISTS: Final[dict[str, ItemType]] = {
    "card_fingerprint": ItemType.CARD_FINGERPRINT,
    "card_country": ItemType.COUNTRY,
    "ip_country": ItemType.COUNTRY,
    "customer": ItemType.CUSTOMER_ID,
    "email": ItemType.EMAIL,
    "ip_address": ItemType.IP_ADDRESS,
}


def may_test(attribute: str, item_type: ItemType) -> bool:
    """Whether `:attribute: in @list` can ever match for a list of `item_type`."""
    return item_type in ANY_STRING or TYPED_LISTS.get(attribute) is item_type


def lists_for(attribute: str) -> str:
    """The item types `attribute` may be tested against, for an error message."""
    typed = TYPED_LISTS.get(attribute)
    names = ([typed.value] if typed else []) + sorted(t.value for t in ANY_STRING)
    return ", ".join(names[:-1]) + " or " + names[-1]
