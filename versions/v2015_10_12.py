"""2015-10-12: invalid card and bank account parameters are request errors (400)."""

import re
from typing import Final

from remit.versioning.change import ErrorResponse, VersionChange

_HASH_PARAM: Final = re.compile(r"(card|bank_account|source|external_account)(\[.*)?")


class ReturnBadRequestForInvalidCardParameters(VersionChange):
    """Invalid or missing parameters inside a `card` or `bank_account` hash (when creating a
    token, a payment method, a source or an external account) answer HTTP 400
    `invalid_request_error`; before 2015-10-12 they answered HTTP 402 as a `card_error`, which
    stripe-python raises as `CardError` instead of `InvalidRequestError`.

    Source: https://docs.stripe.com/changelog/2015-10-12/invalid-parameters-throw-400-error
    """

    resources = ("error",)
    fields = ("type", "param")

    def downgrade_error(self, error: ErrorResponse) -> None:
        param = error.error.get("param")
        if (
            error.http_status == 400
            and error.error.get("type") == "invalid_request_error"
            and isinstance(param, str)
            and _HASH_PARAM.fullmatch(param)
        ):
            error.http_status = 402
            error.error["type"] = "card_error"
