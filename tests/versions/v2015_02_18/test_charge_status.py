from remit.core.jsonview import to_json
from remit.versioning import render
from remit_api.payments.v1 import payments_pb2 as pb
from tests.support import resources
from tests.support.versions import top_level_difference, version_before
from versions.v2015_02_18 import RenameSucceededChargeStatus

AT = "2015-02-18"
BEFORE = version_before(AT)
RELATED = resources.related_lists()


def test_a_successful_charge_is_paid_before_2015_02_18_and_succeeded_from_it() -> None:
    charge = to_json(resources.charge())
    before, at = render(charge, BEFORE, RELATED), render(charge, AT, RELATED)
    assert RenameSucceededChargeStatus.version == AT
    difference = top_level_difference(before, at)
    assert difference.pop("card") == (None, "<absent>")  # ReplaceChargeCardWithSource
    assert difference == {"status": ("paid", "succeeded")}


def test_pending_and_failed_charges_keep_their_status_before_2015_02_18() -> None:
    for status, wire in (
        (pb.CHARGE_STATUS_PENDING, "pending"),
        (pb.CHARGE_STATUS_FAILED, "failed"),
    ):
        charge = to_json(resources.charge(status=status))
        assert render(charge, BEFORE, RELATED)["status"] == wire
        difference = top_level_difference(
            render(charge, BEFORE, RELATED), render(charge, AT, RELATED)
        )
        assert difference == {"card": (None, "<absent>")}  # ReplaceChargeCardWithSource
