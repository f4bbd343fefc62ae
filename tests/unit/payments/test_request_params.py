"""The payments servicer hands every parameter of a confirm or capture request on to the use
case, or refuses it naming it: none is dropped."""

import json

import pytest

from remit.core.errors import ErrorKind, RemitError
from remit.payments.charges import ChargeUpdate
from remit.payments.grpc import (
    capture_params,
    charge_update_from_request,
    confirm_params,
    intent_update_from_request,
    new_intent_from_request,
)
from remit.payments.service import CaptureParams, validate_confirm
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2 as pb

SHIPPING = common_pb2.Shipping(
    name="Jenny Rosen", address=common_pb2.Address(line1="2 Rue Royale", country="FR")
)


def test_a_confirmation_carries_its_receipt_email_and_shipping() -> None:
    params = confirm_params(
        pb.ConfirmPaymentIntentRequest(
            id="pi_1", payment_method="pm_1", receipt_email="jenny@example.com", shipping=SHIPPING
        )
    )
    assert params.receipt_email == "jenny@example.com"
    assert params.shipping == {
        "name": "Jenny Rosen",
        "address": {"line1": "2 Rue Royale", "country": "FR"},
    }


def test_a_confirmation_without_them_leaves_the_intents() -> None:
    params = confirm_params(pb.ConfirmPaymentIntentRequest(id="pi_1", payment_method="pm_1"))
    assert (params.receipt_email, params.shipping) == (None, None)
    assert (params.clear_receipt_email, params.clear_shipping) == (False, False)


def test_a_confirmation_clears_them_with_an_empty_receipt_email_and_clear_shipping() -> None:
    """As on update: a present empty string clears a nullable string, `clear_shipping` the
    shipping message."""
    params = confirm_params(
        pb.ConfirmPaymentIntentRequest(
            id="pi_1", payment_method="pm_1", receipt_email="", clear_shipping=True
        )
    )
    assert (params.receipt_email, params.clear_receipt_email) == (None, True)
    assert (params.shipping, params.clear_shipping) == (None, True)
    # Set and cleared at once is handed on as asked; the use case refuses it (naming shipping).
    both = confirm_params(
        pb.ConfirmPaymentIntentRequest(id="pi_1", shipping=SHIPPING, clear_shipping=True)
    )
    assert (both.shipping is not None, both.clear_shipping) == (True, True)


def test_a_confirmation_clears_setup_future_usage_as_an_update_does() -> None:
    cleared = confirm_params(
        pb.ConfirmPaymentIntentRequest(id="pi_1", clear_setup_future_usage=True)
    )
    assert (cleared.setup_future_usage, cleared.clear_setup_future_usage) == (None, True)
    kept = confirm_params(pb.ConfirmPaymentIntentRequest(id="pi_1"))
    assert (kept.setup_future_usage, kept.clear_setup_future_usage) == (None, False)
    # Set and cleared at once is handed on as asked; the use case refuses it.
    both = confirm_params(
        pb.ConfirmPaymentIntentRequest(
            id="pi_1",
            setup_future_usage=pb.SETUP_FUTURE_USAGE_OFF_SESSION,
            clear_setup_future_usage=True,
        )
    )
    with pytest.raises(RemitError) as refused:
        validate_confirm(both)
    assert (refused.value.kind, refused.value.param) == (
        ErrorKind.INVALID_ARGUMENT,
        "setup_future_usage",
    )


def test_an_update_that_sets_and_clears_setup_future_usage_is_refused_naming_it() -> None:
    with pytest.raises(RemitError) as refused:
        intent_update_from_request(
            pb.UpdatePaymentIntentRequest(
                id="pi_1",
                setup_future_usage=pb.SETUP_FUTURE_USAGE_ON_SESSION,
                clear_setup_future_usage=True,
            )
        )
    assert refused.value.param == "setup_future_usage"
    cleared = intent_update_from_request(
        pb.UpdatePaymentIntentRequest(id="pi_1", clear_setup_future_usage=True)
    )
    assert cleared.changes == {"setup_future_usage": None}


def test_an_update_sets_or_clears_shipping_and_refuses_both_naming_it() -> None:
    """As a confirmation: `shipping` replaces the intent's, `clear_shipping` clears it, and
    both at once is refused rather than one of them being dropped."""
    set_it = intent_update_from_request(pb.UpdatePaymentIntentRequest(id="pi_1", shipping=SHIPPING))
    cleared = intent_update_from_request(
        pb.UpdatePaymentIntentRequest(id="pi_1", clear_shipping=True)
    )
    assert set_it.changes["shipping"] == {
        "name": "Jenny Rosen",
        "address": {"line1": "2 Rue Royale", "country": "FR"},
    }
    assert cleared.changes == {"shipping": None}
    with pytest.raises(RemitError) as both:
        intent_update_from_request(
            pb.UpdatePaymentIntentRequest(id="pi_1", shipping=SHIPPING, clear_shipping=True)
        )
    assert (both.value.kind, both.value.param) == (ErrorKind.INVALID_ARGUMENT, "shipping")


def test_a_charge_update_carries_every_field_it_names_and_only_those() -> None:
    update = charge_update_from_request(
        pb.UpdateChargeRequest(
            id="ch_1",
            description="Order 6735",
            receipt_email="",
            shipping=SHIPPING,
            metadata={"order": "6735"},
            unset_metadata_keys=["gift"],
        )
    )
    assert update == ChargeUpdate(
        description="Order 6735",
        receipt_email="",
        shipping={"name": "Jenny Rosen", "address": {"line1": "2 Rue Royale", "country": "FR"}},
        metadata={"order": "6735"},
        unset_metadata_keys=("gift",),
    )
    assert charge_update_from_request(pb.UpdateChargeRequest(id="ch_1")) == ChargeUpdate()


def test_a_charge_update_that_sets_and_clears_shipping_is_refused_naming_it() -> None:
    with pytest.raises(RemitError) as both:
        charge_update_from_request(
            pb.UpdateChargeRequest(id="ch_1", shipping=SHIPPING, clear_shipping=True)
        )
    assert (both.value.kind, both.value.param) == (ErrorKind.INVALID_ARGUMENT, "shipping")


def test_a_capture_carries_its_metadata_change_and_descriptors() -> None:
    request = pb.CapturePaymentIntentRequest(
        id="pi_1",
        metadata={"shipped": "yes"},
        unset_metadata_keys=["gift"],
        clear_metadata=False,
        statement_descriptor="REMIT STORE",
        statement_descriptor_suffix="ORDER 6735",
    )
    assert capture_params(request) == CaptureParams(
        metadata={"shipped": "yes"},
        unset_metadata_keys=("gift",),
        statement_descriptor="REMIT STORE",
        statement_descriptor_suffix="ORDER 6735",
    )
    assert capture_params(pb.CapturePaymentIntentRequest(id="pi_1", clear_metadata=True)) == (
        CaptureParams(clear_metadata=True)
    )
    plain = capture_params(pb.CapturePaymentIntentRequest(id="pi_1"))
    assert (plain.changes_metadata, plain.changes_descriptors) == (False, False)


def test_an_application_fee_is_refused_naming_it() -> None:
    """remit has no Connect; the REST facade does not accept the parameter at all."""
    with pytest.raises(RemitError) as on_capture:
        capture_params(pb.CapturePaymentIntentRequest(id="pi_1", application_fee_amount=100))
    with pytest.raises(RemitError) as on_create:
        new_intent_from_request(
            pb.CreatePaymentIntentRequest(amount=1000, currency="usd", application_fee_amount=100)
        )
    assert on_capture.value.param == on_create.value.param == "application_fee_amount"


def test_a_captures_changes_are_stored_and_read_back_unchanged() -> None:
    """What a capture asks to change is recorded on its charge until the network answers;
    a capture asking for nothing else records nothing."""
    changes = CaptureParams(
        metadata={"shipped": "yes"},
        unset_metadata_keys=("gift", "note"),
        clear_metadata=True,
        statement_descriptor_suffix="ORDER 6735",
    )
    stored = json.loads(json.dumps(changes.as_json()))
    assert CaptureParams.from_json(stored) == changes
    assert CaptureParams().as_json() is None
    assert CaptureParams.from_json(None) == CaptureParams()


def test_an_update_refuses_payment_method_data_rather_than_ignoring_it() -> None:
    request = pb.UpdatePaymentIntentRequest(
        id="pi_1",
        payment_method_data=pb.PaymentMethodData(type=pb.PAYMENT_METHOD_TYPE_CARD),
    )
    with pytest.raises(RemitError) as refused:
        intent_update_from_request(request)
    assert (refused.value.kind, refused.value.param) == (
        ErrorKind.INVALID_ARGUMENT,
        "payment_method_data",
    )


TypeListRequest = pb.UpdatePaymentIntentRequest | pb.ConfirmPaymentIntentRequest


def _with(
    request: TypeListRequest, name: str, *, types: tuple[str, ...] = (), clear: bool = False
) -> TypeListRequest:
    getattr(request, name).extend(types)
    setattr(request, f"clear_{name}", clear)
    return request


@pytest.mark.parametrize("name", ["allowed_payment_method_types", "excluded_payment_method_types"])
def test_an_update_or_confirmation_lifts_a_type_list_and_refuses_setting_and_lifting_it(
    name: str,
) -> None:
    def update(request: TypeListRequest) -> object:
        assert isinstance(request, pb.UpdatePaymentIntentRequest)
        return intent_update_from_request(request).changes.get(name, "unchanged")

    def confirm(request: TypeListRequest) -> object:
        assert isinstance(request, pb.ConfirmPaymentIntentRequest)
        return getattr(confirm_params(request), name)

    assert update(_with(pb.UpdatePaymentIntentRequest(), name, clear=True)) is None
    assert update(_with(pb.UpdatePaymentIntentRequest(), name, types=("card",))) == ("card",)
    assert update(pb.UpdatePaymentIntentRequest()) == "unchanged"
    assert confirm(_with(pb.ConfirmPaymentIntentRequest(), name, clear=True)) == ()
    for read, request in ((update, pb.UpdatePaymentIntentRequest()),
                          (confirm, pb.ConfirmPaymentIntentRequest())):  # fmt: skip
        both = _with(request, name, types=("card",), clear=True)
        with pytest.raises(RemitError) as refused:
            read(both)
        assert (refused.value.kind, refused.value.param) == (ErrorKind.INVALID_ARGUMENT, name)
