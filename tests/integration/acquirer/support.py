"""Building blocks for the acquirer's tests."""

from datetime import UTC, datetime

from remit.acquirer.domain import AuthorizationRequest
from remit.core.ids import new_id
from remit.core.secrets import Secret

NOW = datetime(2031, 3, 14, 12, 0, tzinfo=UTC)
MERCHANT = "acct_1MerchantForAcquirerTests"


def authorization_request(
    number: str = "4242424242424242",
    *,
    reference: str | None = None,
    amount_minor: int = 1000,
    currency: str = "usd",
    capture: bool = False,
    cvc: str | None = "123",
    exp_month: int = 12,
    exp_year: int = 2034,
    line1: str | None = "1 Main Street",
    postal_code: str | None = "94107",
    three_d_secure: bool = False,
    merchant_id: str = MERCHANT,
    off_session: bool = False,
    setup_off_session: bool = False,
    initial_network_transaction_id: str | None = None,
) -> AuthorizationRequest:
    return AuthorizationRequest(
        reference=new_id("op") if reference is None else reference,
        card_number=Secret(number),
        exp_month=exp_month,
        exp_year=exp_year,
        cvc=None if cvc is None else Secret(cvc),
        amount_minor=amount_minor,
        currency=currency,
        capture=capture,
        merchant_id=merchant_id,
        billing_line1=line1,
        billing_postal_code=postal_code,
        three_d_secure_authenticated=three_d_secure,
        off_session=off_session,
        setup_off_session=setup_off_session,
        initial_network_transaction_id=initial_network_transaction_id,
    )
