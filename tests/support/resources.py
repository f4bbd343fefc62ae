"""Resource JSON built from real protobuf messages (through the same converter the facade uses),
for tests and benchmarks of the versioning layer."""

from google.protobuf import timestamp_pb2

from remit.core.jsonview import JsonObject, to_json
from remit.versioning import Need, RelatedPage
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2 as pb
from remit_api.radar.v1 import radar_pb2 as rpb
from remit_api.webhooks.v1 import webhooks_pb2 as wh

CREATED = timestamp_pb2.Timestamp(seconds=1_760_000_000)


def payment_intent(
    *,
    id: str = "pi_3Example",
    status: int = pb.PAYMENT_INTENT_STATUS_SUCCEEDED,
    latest_charge: str | None = "ch_3Example",
    with_next_action: bool = False,
    for_the_sdk: bool = False,
) -> pb.PaymentIntent:
    """`with_next_action`: 3-D Secure as a redirect, or, `for_the_sdk`, as `use_stripe_sdk`
    (what an intent without a return_url gets)."""
    intent = pb.PaymentIntent(
        id=id,
        amount=2000,
        amount_received=2000 if status == pb.PAYMENT_INTENT_STATUS_SUCCEEDED else 0,
        capture_method=pb.PAYMENT_INTENT_CAPTURE_METHOD_AUTOMATIC,
        client_secret=f"{id}_secret_abc",
        confirmation_method=pb.PAYMENT_INTENT_CONFIRMATION_METHOD_AUTOMATIC,
        created=CREATED,
        currency="usd",
        metadata={"order_id": "6735"},
        payment_method="pm_1Visa",
        payment_method_types=["card"],
        status=status,  # type: ignore[arg-type]
    )
    if latest_charge is not None:
        intent.latest_charge = latest_charge
    if with_next_action and for_the_sdk:
        intent.next_action.CopyFrom(
            pb.NextAction(
                type="use_stripe_sdk",
                use_stripe_sdk=pb.UseStripeSdk(
                    type="three_d_secure_redirect",
                    stripe_js="https://remit.test/three_d_secure/acct_1/tdsc_abc",
                    source="tdsc_abc",
                ),
            )
        )
    elif with_next_action:
        intent.next_action.CopyFrom(
            pb.NextAction(
                type="redirect_to_url",
                redirect_to_url=pb.RedirectToUrl(
                    url="https://remit.test/3ds/abc", return_url="https://shop.test/done"
                ),
            )
        )
    return intent


def charge(
    *,
    id: str = "ch_3Example",
    payment_intent: str = "pi_3Example",
    status: int = pb.CHARGE_STATUS_SUCCEEDED,
    three_d_secure_result: int | None = None,
    rule: str | None = None,
) -> pb.Charge:
    message = pb.Charge(
        id=id,
        amount=2000,
        amount_captured=2000,
        billing_details=common_pb2.BillingDetails(),
        captured=True,
        created=CREATED,
        currency="usd",
        outcome=pb.ChargeOutcome(
            seller_message="Payment complete.", type=pb.CHARGE_OUTCOME_TYPE_AUTHORIZED
        ),
        paid=status != pb.CHARGE_STATUS_FAILED,
        payment_intent=payment_intent,
        payment_method="pm_1Visa",
        payment_method_details=pb.ChargePaymentMethodDetails(
            type="card",
            card=pb.ChargePaymentMethodDetailsCard(last4="4242", exp_month=12, exp_year=2034),
        ),
        status=status,  # type: ignore[arg-type]
    )
    if rule is not None:
        message.outcome.rule = rule
        message.outcome.reason = "rule"
    if three_d_secure_result is not None:
        message.payment_method_details.card.three_d_secure.CopyFrom(
            pb.ChargeThreeDSecure(
                authentication_flow=pb.THREE_D_SECURE_AUTHENTICATION_FLOW_CHALLENGE,
                result=three_d_secure_result,  # type: ignore[arg-type]
                transaction_id="3ds_1Example",
                version="2.2.0",
            )
        )
    return message


def refund(*, id: str = "re_3Example", charge: str = "ch_3Example") -> pb.Refund:
    return pb.Refund(
        id=id,
        amount=500,
        charge=charge,
        created=CREATED,
        currency="usd",
        payment_intent="pi_3Example",
        status=pb.REFUND_STATUS_SUCCEEDED,
    )


def rule(*, id: str = "rule_1Example") -> rpb.Rule:
    return rpb.Rule(
        id=id,
        action=rpb.RULE_ACTION_ALLOW,
        predicate=":card_fingerprint: in @trusted",
        created=CREATED,
    )


def customer(*, id: str = "cus_1") -> pb.Customer:
    return pb.Customer(id=id, created=CREATED, email="a@b.test")


def event(
    data_object: JsonObject,
    *,
    previous_attributes: JsonObject | None = None,
    event_type: str = "payment_intent.succeeded",
) -> wh.Event:
    data = wh.EventData()
    data.object.update(data_object)
    if previous_attributes is not None:
        data.previous_attributes.update(previous_attributes)
    return wh.Event(
        id="evt_3Example",
        created=CREATED,
        data=data,
        request=wh.EventRequest(id="req_abc", idempotency_key="key-1"),
        type=event_type,
    )


def examples() -> dict[str, JsonObject]:
    """One latest-schema example of each versioned shape, by name."""
    intent = to_json(payment_intent())
    expanded = dict(intent)
    expanded["latest_charge"] = to_json(charge())
    return {
        "payment_intent": intent,
        "payment_intent_requiring_action": to_json(
            payment_intent(status=pb.PAYMENT_INTENT_STATUS_REQUIRES_ACTION, with_next_action=True)
        ),
        "payment_intent_requiring_action_of_the_sdk": to_json(
            payment_intent(
                status=pb.PAYMENT_INTENT_STATUS_REQUIRES_ACTION,
                with_next_action=True,
                for_the_sdk=True,
            )
        ),
        "payment_intent_without_charge": to_json(
            payment_intent(
                id="pi_3New",
                status=pb.PAYMENT_INTENT_STATUS_REQUIRES_PAYMENT_METHOD,
                latest_charge=None,
            )
        ),
        "payment_intent_with_expanded_charge": expanded,
        "charge": to_json(charge()),
        "charge_decided_by_rule": to_json(charge(rule="rule_1Example")),
        "charge_with_three_d_secure": to_json(
            charge(three_d_secure_result=pb.THREE_D_SECURE_RESULT_AUTHENTICATED)
        ),
        "refund": to_json(refund()),
        "customer": to_json(customer()),
        "deleted_customer": to_json(pb.DeletedCustomer(id="cus_1", deleted=True)),
        "payment_method": to_json(
            pb.PaymentMethod(id="pm_1Visa", created=CREATED, type=pb.PAYMENT_METHOD_TYPE_CARD)
        ),
        "list_of_payment_intents": {
            "object": "list",
            "data": [intent],
            "has_more": False,
            "url": "/v1/payment_intents",
        },
        "event": to_json(
            event(
                intent,
                previous_attributes={"status": "requires_payment_method"},
                event_type="payment_intent.updated",
            )
        ),
    }


def related_lists() -> dict[tuple[Need, str], RelatedPage]:
    """What `gather_related` finds for the examples: the example charge, its refund, and the
    rule that decided it (when one did), found by the charge's id and its own (as it decided
    the charge)."""
    from versions.v2017_02_14 import RULE_OF_CHARGE
    from versions.v2022_11_15 import CHARGES_OF_PAYMENT_INTENT, REFUNDS_OF_CHARGE

    return {
        (CHARGES_OF_PAYMENT_INTENT, "pi_3Example"): RelatedPage.whole([to_json(charge())]),
        (REFUNDS_OF_CHARGE, "ch_3Example"): RelatedPage.whole([to_json(refund())]),
        (RULE_OF_CHARGE, "ch_3Example rule_1Example"): RelatedPage.whole([to_json(rule())]),
    }
