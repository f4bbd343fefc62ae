"""A PaymentIntent's client_secret sent with a secret key, checked against the intent's own.

A secret key needs no client secret, yet Stripe does not ignore one sent with it: a secret that
is not the intent's is refused (400, param client_secret), so that a server confirming one order
with another order's secret hears of the mix-up instead of paying the wrong intent. A publishable
key's secret is the core's to check, and a mismatch there is answered as if the intent did not
exist (404): a public key must not learn which intents there are. A secret key may see every
intent of its account, so there is nothing to hide from it.
"""

import hmac

from remit.rest.errors import StripeError
from remit_api.payments.v1 import payments_pb2 as pb

MISMATCH_MESSAGE = (
    "The client_secret provided does not match the client_secret associated with the PaymentIntent."
)


def refuse_a_mismatched_client_secret(presented: str, intent: pb.PaymentIntent) -> None:
    """Refuses `presented` unless it is `intent`'s client secret. Compared in constant time, as
    the core compares a publishable key's: how long a refusal takes must not tell a guesser how
    much of the secret it had right."""
    expected = intent.client_secret if intent.HasField("client_secret") else ""
    if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
        raise StripeError.invalid_request(MISMATCH_MESSAGE, param="client_secret")
