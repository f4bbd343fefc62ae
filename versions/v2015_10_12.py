"""2015-10-12: invalid card parameters of a token are request errors (400)."""

import re
from typing import Final

from remit.versioning.change import ErrorResponse, VersionChange
from remit.versioning.operations import CREATE_TOKEN

_CARD_HASH_PARAM: Final = re.compile(r"card(\[.*)?")
"""The `card` hash or a parameter inside it (`card[exp_month]`)."""


class ReturnBadRequestForInvalidCardParameters(VersionChange):
    """Invalid or missing parameters of the `card` hash when creating a token answer HTTP 400
    `invalid_request_error`; before 2015-10-12 they answered HTTP 402 as a `card_error`, which
    stripe-python raises as `CardError` instead of `InvalidRequestError`.

    Stripe's change concerned the card and bank account hashes of token, source and external
    account creation; remit creates tokens of cards only, and neither sources nor external
    accounts. A parameter no version knows (`card[colour]`, `parameter_unknown`) stays a 400.
    So does every error of other operations, PaymentMethods' `card` and
    `payment_method_data[card]` included: PaymentMethods came after 2015-10-12, so no client
    of theirs ever saw a 402 for a bad parameter.

    Source: https://docs.stripe.com/changelog/2015-10-12/invalid-parameters-throw-400-error
    """

    resources = ("error",)
    fields = ("type", "param", "code")
    operations = (CREATE_TOKEN,)

    def downgrade_error(self, error: ErrorResponse) -> None:
        param = error.error.get("param")
        if (
            error.operation in self.operations
            and error.http_status == 400
            and error.error.get("type") == "invalid_request_error"
            and error.error.get("code") != "parameter_unknown"
            and isinstance(param, str)
            and _CARD_HASH_PARAM.fullmatch(param)
        ):
            error.http_status = 402
            error.error["type"] = "card_error"
