from remit.core.jsonview import to_json
from remit.versioning import render
from tests.support import resources
from tests.support.versions import top_level_difference, version_before
from versions.v2025_03_31 import RemoveInvoiceFromPaymentIntentsAndCharges

AT = "2025-03-31.basil"
BEFORE = version_before(AT)


def test_payment_intents_and_charges_have_a_null_invoice_before_basil() -> None:
    assert RemoveInvoiceFromPaymentIntentsAndCharges.version == AT
    assert BEFORE == "2025-03-01.dashboard"
    for obj in (to_json(resources.payment_intent()), to_json(resources.charge())):
        before, at = render(obj, BEFORE), render(obj, AT)
        assert top_level_difference(before, at) == {"invoice": (None, "<absent>")}


def test_refunds_never_had_an_invoice() -> None:
    refund = to_json(resources.refund())
    assert render(refund, BEFORE) == refund
