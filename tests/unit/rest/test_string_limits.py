"""Every string parameter of every REST operation is held to Stripe's limit, and the core holds
the field the facade sends it in to the same one.

Stripe's limits come from its OpenAPI spec (`tests/support/stripe_string_limits.py`); the
facade's are declared with each parameter (`remit.rest.params.String`); the core's with each
request field (`(remit_api.options.v1.max_length)`).
"""

import re
from collections.abc import Iterator
from typing import Final, cast

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from remit.rest import params as p
from remit.rest.app import Operation
from remit.rest.resources.cards import MAX_SECRET_LENGTH, SecretDigits
from remit.rest.routes import all_operations
from remit.versioning.operations import operation_key
from remit_api.ledger.v1 import ledger_pb2
from remit_api.options.v1 import options_pb2
from remit_api.payments.v1 import payments_pb2
from remit_api.radar.v1 import radar_pb2
from remit_api.webhooks.v1 import webhooks_pb2
from tests.support.stripe_string_limits import STRIPE_STRING_LIMITS

# Where remit holds a parameter to less than Stripe's limit, and why.
STRICTER_THAN_STRIPE: Final = {
    ("POST /v1/webhook_endpoints", "api_version"): "it must name one of remit's API versions",
    ("GET /v1/events", "type"): "it must name a Stripe event type",
    ("GET /v1/events", "types[]"): "it must name a Stripe event type",
    ("POST /v1/payment_methods", "card[number]"): "no card number is longer",
    ("POST /v1/payment_methods", "card[cvc]"): "no CVC is longer",
}

# Where Stripe takes more than its default of 5000 characters though the spec the table was read
# from has no such operation: the long explanations of a dispute's evidence (Stripe's
# `POST /v1/disputes/{dispute}`, `evidence[...]` maxLength 150000). The core checks the same
# limits (`remit.payments.disputes.checked_evidence`).
LONGER_THAN_DEFAULT: Final = {
    ("POST /v1/disputes/{}", f"evidence[{name}]"): 150_000
    for name in (
        "access_activity_log",
        "cancellation_policy_disclosure",
        "cancellation_rebuttal",
        "duplicate_charge_explanation",
        "product_description",
        "refund_policy_disclosure",
        "refund_refusal_explanation",
        "uncategorized_text",
    )
}

# The core request each operation sends its parameters in, under the same names.
REQUESTS: Final[dict[str, type[Message]]] = {
    "POST /v1/payment_intents": payments_pb2.CreatePaymentIntentRequest,
    "GET /v1/payment_intents": payments_pb2.ListPaymentIntentsRequest,
    "GET /v1/payment_intents/{}": payments_pb2.GetPaymentIntentRequest,
    "POST /v1/payment_intents/{}": payments_pb2.UpdatePaymentIntentRequest,
    "POST /v1/payment_intents/{}/confirm": payments_pb2.ConfirmPaymentIntentRequest,
    "POST /v1/payment_intents/{}/capture": payments_pb2.CapturePaymentIntentRequest,
    "GET /v1/charges": payments_pb2.ListChargesRequest,
    "POST /v1/charges/{}": payments_pb2.UpdateChargeRequest,
    "POST /v1/refunds": payments_pb2.CreateRefundRequest,
    "GET /v1/refunds": payments_pb2.ListRefundsRequest,
    "POST /v1/payment_methods": payments_pb2.CreatePaymentMethodRequest,
    "GET /v1/payment_methods": payments_pb2.ListPaymentMethodsRequest,
    "POST /v1/payment_methods/{}": payments_pb2.UpdatePaymentMethodRequest,
    "POST /v1/payment_methods/{}/attach": payments_pb2.AttachPaymentMethodRequest,
    "POST /v1/tokens": payments_pb2.CreateTokenRequest,
    "POST /v1/customers": payments_pb2.CreateCustomerRequest,
    "GET /v1/customers": payments_pb2.ListCustomersRequest,
    "POST /v1/customers/{}": payments_pb2.UpdateCustomerRequest,
    "GET /v1/reviews": payments_pb2.ListReviewsRequest,
    "GET /v1/disputes": payments_pb2.ListDisputesRequest,
    "POST /v1/webhook_endpoints": webhooks_pb2.CreateWebhookEndpointRequest,
    "GET /v1/webhook_endpoints": webhooks_pb2.ListWebhookEndpointsRequest,
    "POST /v1/webhook_endpoints/{}": webhooks_pb2.UpdateWebhookEndpointRequest,
    "GET /v1/events": webhooks_pb2.ListEventsRequest,
    "GET /v1/balance_transactions": ledger_pb2.ListBalanceTransactionsRequest,
    "POST /v1/payouts": ledger_pb2.CreatePayoutRequest,
    "GET /v1/payouts": ledger_pb2.ListPayoutsRequest,
    "POST /v1/radar/rules": radar_pb2.CreateRuleRequest,
    "GET /v1/radar/rules": radar_pb2.ListRulesRequest,
    "POST /v1/radar/rules/{}": radar_pb2.UpdateRuleRequest,
    "POST /v1/radar/value_lists": radar_pb2.CreateValueListRequest,
    "GET /v1/radar/value_lists": radar_pb2.ListValueListsRequest,
    "POST /v1/radar/value_list_items": radar_pb2.AddValueListItemRequest,
    "GET /v1/radar/value_list_items": radar_pb2.ListValueListItemsRequest,
}

# Parameters the core receives under another name.
RENAMED: Final = {
    ("POST /v1/tokens", "card[name]"): "name",
    **{
        ("POST /v1/tokens", f"card[address_{part}]"): f"address[{field}]"
        for part, field in {
            "city": "city",
            "country": "country",
            "line1": "line1",
            "line2": "line2",
            "state": "state",
            "zip": "postal_code",
        }.items()
    },
}

# Parameters the core never receives as text of their own, and why.
NOT_SENT: Final = {
    ("POST /v1/tokens", "card[currency]"): "a token's card takes no currency",
    ("GET /v1/charges", "transfer_group"): "the facade answers an empty list itself",
    ("POST /v1/radar/rules", "rule"): "the facade parses it into action and predicate",
}


def _key(operation: Operation) -> str:
    return re.sub(r"\{[^}]+\}", "{}", operation_key(operation.method, operation.path))


def _stripe_limits() -> dict[str, dict[str, int | None]]:
    return {re.sub(r"\{[^}]+\}", "{}", key): limits for key, limits in STRIPE_STRING_LIMITS.items()}


def text_params(field: p.Field[object], name: str) -> Iterator[tuple[str, p.Field[object]]]:
    """The parameters under `name` that take text, named as on the wire (`[]`: each item)."""
    if isinstance(field, p.Object):
        for child, nested in field.schema.fields.items():
            yield from text_params(nested, f"{name}[{child}]")
    elif isinstance(field, p.Array):
        yield from text_params(field.item, f"{name}[]")
    elif isinstance(field, p.String | SecretDigits):
        yield name, field


def _limit(field: p.Field[object]) -> int:
    return field.max_length if isinstance(field, p.String) else MAX_SECRET_LENGTH


OPERATIONS: Final = {_key(operation): operation for operation in all_operations()}
TEXT_PARAMS: Final = [
    (key, name, field)
    for key, operation in OPERATIONS.items()
    for top, declared in operation.schema.fields.items()
    if top != "expand"
    for name, field in text_params(declared, top)
]


def _case(key: str, name: str, field: p.Field[object]) -> object:
    return pytest.param(key, name, field, id=f"{key} {name}")


def test_the_table_of_stripes_limits_names_the_operations_remit_serves() -> None:
    served = set(OPERATIONS) & set(_stripe_limits())
    assert "POST /v1/payment_intents" in served
    assert len(served) >= 25


@pytest.mark.parametrize(("key", "name", "field"), [_case(*case) for case in TEXT_PARAMS])
def test_each_text_parameter_takes_stripes_limit(
    key: str, name: str, field: p.Field[object]
) -> None:
    """Stripe's limit where its spec gives one (or a deliberately lower one, said why), and
    never more than Stripe's default of 5000 characters where it gives none."""
    limit = _limit(field)
    stripe = _stripe_limits().get(key, {}).get(name)
    if (key, name) in STRICTER_THAN_STRIPE:
        assert stripe is None or limit < stripe
    elif stripe is not None:
        assert limit == stripe
    assert limit <= LONGER_THAN_DEFAULT.get((key, name), p.DEFAULT_STRING_MAX_LENGTH)
    if (key, name) in LONGER_THAN_DEFAULT:
        assert limit == LONGER_THAN_DEFAULT[key, name]


def _proto_field(message: Descriptor, name: str) -> FieldDescriptor | None:
    """The field of `message` a parameter named as on the wire (`shipping[address][line1]`,
    `payment_method_types[]`) is sent in."""
    parts = re.findall(r"[^\[\]]+", name)
    field: FieldDescriptor | None = None
    current: Descriptor | None = message
    for part in parts:
        if current is None:
            return None
        field = current.fields_by_name.get(part)
        if field is None:
            return None
        current = field.message_type
    return field


def _declared_max_length(field: FieldDescriptor) -> int | None:
    options = field.GetOptions()
    if not options.HasExtension(options_pb2.max_length):
        return None
    return int(options.Extensions[options_pb2.max_length])


SENT: Final = [
    (key, name, field)
    for key, name, field in TEXT_PARAMS
    if key in REQUESTS and isinstance(field, p.String) and (key, name) not in NOT_SENT
]


@pytest.mark.parametrize(("key", "name", "field"), [_case(*case) for case in SENT])
def test_the_core_holds_what_the_facade_sends_to_the_same_limit(
    key: str, name: str, field: p.String
) -> None:
    """An internal caller can send the core nothing longer than a REST client could."""
    request = REQUESTS[key]
    sent_as = RENAMED.get((key, name), name)
    proto = _proto_field(cast(Descriptor, request.DESCRIPTOR), sent_as)
    assert proto is not None, f"{key} {name}: no field {sent_as} in {request.DESCRIPTOR.name}"
    assert proto.type == FieldDescriptor.TYPE_STRING
    assert _declared_max_length(proto) == field.max_length


def test_every_operation_named_here_is_one_remit_serves() -> None:
    named = {
        key for key, _ in (*STRICTER_THAN_STRIPE, *RENAMED, *NOT_SENT, *LONGER_THAN_DEFAULT)
    } | set(REQUESTS)
    assert named <= set(OPERATIONS)
