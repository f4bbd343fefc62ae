"""The amount a payment, capture or refund may name on the REST API: at most what the core
takes (`remit.payments.service.MAX_AMOUNT_MINOR`), refused past it with the code the core
gives (Stripe's `amount_too_large`), before a request reaches the core."""

from typing import Final

from remit.rest.params import Integer

MAX_AMOUNT_MINOR: Final = 99_999_999


def amount_field() -> Integer:
    """A positive amount in minor units, no more than `MAX_AMOUNT_MINOR`."""
    return Integer(min=1, max=MAX_AMOUNT_MINOR, over_max_code="amount_too_large")
