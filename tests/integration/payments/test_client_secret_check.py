"""A PaymentIntent read with a client secret (a publishable key's): only the intent's own
secret finds it, and the secret is compared in constant time, so that how long a refusal takes
tells nothing of how much of a guess was right."""

import hmac

import pytest

from remit.core.errors import RemitError
from remit.payments.domain import NewPaymentIntent, PaymentIntent
from remit.payments.service import Done, KeyedCall, PaymentsService

pytestmark = pytest.mark.anyio


async def _intent(payments: PaymentsService, account_id: str) -> PaymentIntent:
    created = await payments.create_payment_intent(
        KeyedCall(account_id, "secret", "CreatePaymentIntent", b"500"),
        NewPaymentIntent(amount_minor=500, currency="usd"),
        lambda intent: intent.id.encode(),
    )
    assert isinstance(created, Done)
    return created.value


async def test_only_the_intents_own_secret_finds_it_compared_in_constant_time(
    payments: PaymentsService, account_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    intent = await _intent(payments, account_id)
    compared: list[tuple[object, object]] = []
    constant_time = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return constant_time(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    found = await payments.get_payment_intent(account_id, intent.id, intent.client_secret)
    assert found.id == intent.id
    assert compared == [(intent.client_secret.encode(), intent.client_secret.encode())]
    # The last character changed (to one it is not: a random secret ends in "x" one time in 62).
    last = "y" if intent.client_secret.endswith("x") else "x"
    for wrong in (intent.client_secret[:-1] + last, "", "pi_é_secret_ü"):
        with pytest.raises(RemitError) as refused:
            await payments.get_payment_intent(account_id, intent.id, wrong)
        assert refused.value.param == "intent"
    assert len(compared) == 4
