"""Raw card details in a request: parsed straight into `Secret`, gated, sent to the vault.

The facade hands raw numbers to the vault and passes only the resulting vault token on to the
core: the core never sees a card number, not even in transit.
"""

from dataclasses import replace
from typing import Final

from remit.accounts.domain import KeyKind
from remit.core.secrets import Secret
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.errors import StripeError
from remit.rest.forms import FormValue
from remit.rest.grpc_call import call
from remit.rest.params import Field, Integer, Object, ParamError, String
from remit_api.common.v1 import common_pb2
from remit_api.vault.v1 import vault_pb2

MAX_SECRET_LENGTH: Final = 32
# Stripe's words, but for how to enable it: remit grants the account's raw card access when the
# account is created, not through Stripe's support.
RAW_CARD_DATA_MESSAGE: Final = (
    "Sending credit card numbers directly to the Stripe API is generally unsafe. We suggest you "
    "use test tokens that map to the test card you are using, see https://stripe.com/docs/testing."
    " To send raw card data with a secret key, the account needs raw card access: create it with "
    "`remit accounts create --raw-card-access`."
)


class SecretDigits(Field[Secret[str]]):
    """A card number or CVC: wrapped in `Secret` at once, never echoed in an error."""

    empty_code = "parameter_invalid_string_empty"

    def parse_value(self, value: FormValue, param: str) -> Secret[str]:
        if not isinstance(value, str):
            raise ParamError(
                f"Invalid string: {param} must be a single value.",
                code="parameter_invalid",
                param=param,
            )
        if len(value) > MAX_SECRET_LENGTH:
            raise ParamError(
                f"Invalid {param}: it is longer than any card value.",
                code="parameter_invalid",
                param=param,
            )
        return Secret(value)


def expiry_field() -> Integer:
    """A card's expiry month or year. The vault is the judge of which are valid; they travel to
    it as 32-bit integers, so a value beyond those is refused here, as the integer it cannot
    be, rather than failing where the request to the vault is built (a 500)."""
    return Integer(min=-(2**31), max=2**31 - 1)


def raw_card_fields() -> dict[str, Field[object]]:
    return {
        "number": SecretDigits(),
        "exp_month": expiry_field(),
        "exp_year": expiry_field(),
        "cvc": SecretDigits(),
    }


def card_field() -> Object:
    """A card to make a payment method of: a token (`tok_visa`, or one of the account's), or
    raw card fields."""
    return Object({**raw_card_fields(), "token": String()}, exclusive=[("number", "token")])


def require_raw_card_access(context: ApiContext) -> None:
    """Publishable keys tokenize in the browser; secret keys need the account's permission."""
    principal = context.principal
    if principal.key_kind is KeyKind.SECRET and not principal.raw_card_access:
        raise StripeError.invalid_request(RAW_CARD_DATA_MESSAGE)


def _required(card: dict[str, object], name: str, parent: str) -> object:
    if name not in card:
        param = f"{parent}[{name}]"
        raise StripeError.invalid_request(
            f"Missing required param: {param}.", code="parameter_missing", param=param
        )
    return card[name]


def full_expiry_year(year: int) -> int:
    """Stripe accepts two-digit expiry years (34) and reads them in this century (2034)."""
    return year + 2000 if 0 <= year < 100 else year


async def tokenize(
    context: ApiContext,
    deps: Dependencies,
    card: dict[str, object],
    billing_details: common_pb2.BillingDetails | None = None,
    *,
    param: str = "card",
) -> vault_pb2.TokenizeCardResponse:
    """Store the card in the vault and return its vault token and public details. `param` is
    where the request sent the card (`payment_method_data[card]`): errors name its fields."""
    require_raw_card_access(context)
    number = _required(card, "number", param)
    exp_month = _required(card, "exp_month", param)
    exp_year = _required(card, "exp_year", param)
    assert isinstance(number, Secret)
    assert isinstance(exp_month, int)
    assert isinstance(exp_year, int)
    request = vault_pb2.TokenizeCardRequest(
        account_id=context.principal.account_id,
        number=number.reveal(),
        exp_month=exp_month,
        exp_year=full_expiry_year(exp_year),
        requester="api",
        livemode=context.principal.livemode,
    )
    cvc = card.get("cvc")
    if isinstance(cvc, Secret):
        request.cvc = cvc.reveal()
    if billing_details is not None:
        request.billing_details.CopyFrom(billing_details)
    try:
        return await call(deps.vault.TokenizeCard, request, context)
    except StripeError as refused:
        raise _naming_fields_of(refused, param) from None


def _naming_fields_of(refused: StripeError, param: str) -> StripeError:
    """The vault's refusal of a card (`card[number]`) naming the field where the request sent
    it."""
    named = refused.param
    if param == "card" or named is None or not named.startswith("card["):
        return refused
    return replace(refused, param=param + named.removeprefix("card"))
