"""What a look-up at the network expects to find under its reference, and the refusal of a
record that differs.

A look-up settles an operation whose outcome was unknown: the core takes what the acquirer holds
under the reference as the outcome of its own call. The reference is derived from the charge or
refund id, so the acquirer should never hold anything else there; another kind, amount,
currency, merchant or authorization under it is a bug in remit or a reused reference. Applied,
it would record money against the charge that does not match the network. So it is refused:
nothing is applied, the request fails as remit's own error (a 500 `api_error`) and keeps its
recovery point, as when the network refuses a reference bound to other parameters
(`network.reference_conflict`), and an operator is told.

Only what every acquirer record carries is compared: kind, amount, currency and merchant are
NOT NULL on the acquirer's operations since its first migration, and so is the authorization of
a capture, void or refund (only a declined authorization has none); an authorization's stored
result always says whether it captured. Not compared: the fee and the settlement time (optional:
records from before the acquirer reported them lack them), and the id of the authorization an
authorization created, which is what its look-up finds out.

What an approved capture released of its authorization is compared when the record says
(`released`, optional as the fee is): a capture of the amount asked that released another
amount, or kept the rest of the authorization held, is not the capture the core sent. Its
captures are final (it never asks the acquirer to keep an authorization open), and its ledger
releases the rest of the reservation with the capture: applied, such a record would have the
ledger and the charge give the cardholder back money the acquirer still holds, or the other
way round.
"""

import logging
from dataclasses import dataclass
from typing import TypeAlias

from remit.core.errors import ErrorKind, RemitError
from remit.payments.charges import Charge, Refund
from remit_api.acquirer.v1 import acquirer_pb2

log = logging.getLogger(__name__)

Kind: TypeAlias = acquirer_pb2.OperationKind.ValueType


@dataclass(frozen=True)
class ExpectedOperation:
    """The operation a look-up expects under its reference: the one the core sent (or would
    send) under it."""

    kind: Kind
    merchant_id: str
    currency: str
    # None for a void, whose request names no amount: the acquirer records what the void
    # released (the authorization's capturable rest, 0 when it refused), which the core does not
    # decide; the authorization id ties a void to its charge.
    amount_minor: int | None
    # The charge's authorization, for a capture, void or refund.
    authorization_id: str | None = None
    # For an authorization: whether it was to capture at once (automatic capture). An approved
    # authorization that captured when the core meant to hold the funds, or held them when the
    # core meant to capture, took other money than the charge will record.
    capture: bool | None = None
    # For a capture: what it releases of the authorization, all it does not capture (the
    # core's captures are final); None for the other kinds.
    released_minor: int | None = None


def expected_authorization(charge: Charge, *, capture: bool) -> ExpectedOperation:
    return ExpectedOperation(
        kind=acquirer_pb2.OPERATION_KIND_AUTHORIZE,
        merchant_id=charge.account_id,
        currency=charge.currency,
        amount_minor=charge.amount_minor,
        capture=capture,
    )


def expected_capture(charge: Charge, authorization_id: str, amount_minor: int) -> ExpectedOperation:
    """A capture of `amount_minor`: all of the charge, or the part `amount_to_capture` asked,
    releasing the rest of the charge's authorization (its amount)."""
    return ExpectedOperation(
        kind=acquirer_pb2.OPERATION_KIND_CAPTURE,
        merchant_id=charge.account_id,
        currency=charge.currency,
        amount_minor=amount_minor,
        authorization_id=authorization_id,
        released_minor=charge.amount_minor - amount_minor,
    )


def expected_void(charge: Charge, authorization_id: str) -> ExpectedOperation:
    return ExpectedOperation(
        kind=acquirer_pb2.OPERATION_KIND_VOID,
        merchant_id=charge.account_id,
        currency=charge.currency,
        amount_minor=None,
        authorization_id=authorization_id,
    )


def expected_refund(charge: Charge, authorization_id: str, refund: Refund) -> ExpectedOperation:
    return ExpectedOperation(
        kind=acquirer_pb2.OPERATION_KIND_REFUND,
        merchant_id=charge.account_id,
        currency=charge.currency,
        amount_minor=refund.amount_minor,
        authorization_id=authorization_id,
    )


def differing_fields(expected: ExpectedOperation, held: acquirer_pb2.Operation) -> list[str]:
    """The names (as the acquirer's `Operation` calls them) of what `held` has otherwise than
    `expected`; empty when it is the expected operation."""
    differing: list[str] = []
    if held.kind != expected.kind:
        differing.append("kind")
    if expected.amount_minor is not None and held.amount != expected.amount_minor:
        differing.append("amount")
    # The core keeps currencies in lower case, as Stripe writes them; a network may not.
    if held.currency.lower() != expected.currency.lower():
        differing.append("currency")
    if held.merchant_id != expected.merchant_id:
        differing.append("merchant_id")
    if expected.authorization_id is not None and held.authorization_id != expected.authorization_id:
        differing.append("authorization_id")
    if (
        expected.capture is not None
        and held.kind == acquirer_pb2.OPERATION_KIND_AUTHORIZE
        # A declined authorization captured nothing, whatever it asked.
        and held.approved
        and held.authorization.captured != expected.capture
    ):
        differing.append("authorization.captured")
    if (
        expected.released_minor is not None
        # A refused capture released nothing, whatever it asked; an acquirer that does not
        # report releases says nothing of it.
        and held.approved
        and held.HasField("released")
        and held.released != expected.released_minor
    ):
        differing.append("released")
    return differing


@dataclass(eq=False)
class NetworkRecordMismatchError(RemitError):
    """The refusal of a looked-up record that is not the expected operation. Besides what the
    client is told, it carries what an operator needs to find the record at the acquirer, which
    the completer stores on the request's key (`remit.payments.held_requests`); none of it
    reaches the client, and none of it is card data."""

    reference: str = ""
    # The acquirer's id of the operation it holds under the reference.
    operation_id: str = ""
    # The names of the fields that differ, as `differing_fields` gives them.
    differing: tuple[str, ...] = ()


def network_record_mismatch(
    reference: str, operation_id: str, differing: tuple[str, ...]
) -> NetworkRecordMismatchError:
    """What the client is told when the network holds another operation under the reference:
    remit's own error, a 500 `api_error`, with nothing applied."""
    return NetworkRecordMismatchError(
        message="An unexpected error occurred while settling this request with the card "
        "network. It stays where it stopped; retry later with the same idempotency key.",
        kind=ErrorKind.INTERNAL,
        error_type="api_error",
        reference=reference,
        operation_id=operation_id,
        differing=differing,
    )


def refuse_unless_expected(
    reference: str, expected: ExpectedOperation, held: acquirer_pb2.Operation
) -> None:
    """Refuse (`network_record_mismatch`) a looked-up record that is not the expected operation,
    and tell the operator which fields differ (by name: the record itself is at the acquirer,
    under the reference and the operation id logged with them)."""
    differing = differing_fields(expected, held)
    if not differing:
        return
    log.error(
        "the network holds %s (operation %s) for another operation than the one looked up: "
        "%s differ; nothing is applied, and the request waits at its recovery point",
        reference,
        held.id,
        ", ".join(differing),
    )
    raise network_record_mismatch(reference, held.id, tuple(differing))
