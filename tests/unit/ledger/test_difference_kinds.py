"""Every kind of difference `remit ledger verify` reports has its own value on the wire."""

from remit.ledger.grpc import _DIFFERENCE_KINDS
from remit.ledger.verify_differences import DifferenceKind
from remit_api.ledger.v1 import ledger_pb2 as pb


def test_every_difference_kind_has_a_wire_kind_of_its_own() -> None:
    wire = [_DIFFERENCE_KINDS[kind.value] for kind in DifferenceKind]
    assert pb.LEDGER_DIFFERENCE_KIND_UNSPECIFIED not in wire
    assert len(set(wire)) == len(DifferenceKind)
