"""What Stripe answers when an object named in the path or the body does not exist."""

import pytest
import stripe


def _refusal(error: stripe.InvalidRequestError) -> tuple[object, ...]:
    assert error.error is not None
    return (error.http_status, error.code, error.error.param, error.user_message)


def test_an_unknown_charge_in_the_path_is_missing_as_the_id(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.charges.retrieve("ch_nope")
    assert _refusal(refused.value) == (404, "resource_missing", "id", "No such charge: 'ch_nope'")

    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.charges.update("ch_nope", params={"description": "x"})
    assert _refusal(refused.value)[:3] == (404, "resource_missing", "id")


def test_an_unknown_refund_in_the_path_is_missing_as_the_id(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.refunds.retrieve("re_nope")
    assert _refusal(refused.value) == (404, "resource_missing", "id", "No such refund: 're_nope'")

    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.refunds.update("re_nope", params={"metadata": {"k": "v"}})
    assert _refusal(refused.value)[:3] == (404, "resource_missing", "id")

    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.refunds.cancel("re_nope")
    assert _refusal(refused.value)[:3] == (404, "resource_missing", "id")


def test_an_unknown_charge_to_refund_is_missing_as_the_charge_parameter(
    client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.refunds.create(params={"charge": "ch_nope"})
    assert _refusal(refused.value)[:3] == (404, "resource_missing", "charge")


def test_an_unknown_payment_method_is_named_as_stripe_names_it(
    client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_methods.retrieve("pm_nope")
    assert _refusal(refused.value) == (
        404,
        "resource_missing",
        "payment_method",
        "No such PaymentMethod: 'pm_nope'",
    )
