"""The REST operations whose parameters (or errors) a version change may rewrite, mapped to the
gRPC request message that carries them, so the parameters a change writes are checked against
the latest schema like the fields of a resource."""

from collections.abc import Mapping
from typing import Final

from google.protobuf.descriptor import Descriptor

from remit.versioning.descriptors import UnknownFieldError
from remit_api.payments.v1 import payments_pb2 as pb

CREATE_PAYMENT_INTENT: Final = "POST /v1/payment_intents"
UPDATE_PAYMENT_INTENT: Final = "POST /v1/payment_intents/{intent}"
CONFIRM_PAYMENT_INTENT: Final = "POST /v1/payment_intents/{intent}/confirm"
CREATE_TOKEN: Final = "POST /v1/tokens"  # noqa: S105 (an operation, not a secret)

REQUEST_MESSAGES: Final[Mapping[str, Descriptor]] = {
    CREATE_PAYMENT_INTENT: pb.CreatePaymentIntentRequest.DESCRIPTOR,
    UPDATE_PAYMENT_INTENT: pb.UpdatePaymentIntentRequest.DESCRIPTOR,
    CONFIRM_PAYMENT_INTENT: pb.ConfirmPaymentIntentRequest.DESCRIPTOR,
    CREATE_TOKEN: pb.CreateTokenRequest.DESCRIPTOR,
}


def operation_key(method: str, path: str) -> str:
    return f"{method.upper()} {path}"


def request_message_for(operation: str) -> Descriptor:
    try:
        return REQUEST_MESSAGES[operation]
    except KeyError:
        raise UnknownFieldError(
            f"no request message is known for operation {operation!r}; add it to "
            "remit.versioning.operations.REQUEST_MESSAGES"
        ) from None
