"""Every documented test card, authorized against the real acquirer database."""

from dataclasses import dataclass

import pytest

from remit.acquirer.cards import Brand, Funding, Risk
from remit.acquirer.domain import CheckResult, NetworkStatus
from remit.acquirer.service import AcquirerService
from tests.integration.acquirer.support import authorization_request

pytestmark = pytest.mark.anyio

P, F, U, N = CheckResult.PASS, CheckResult.FAIL, CheckResult.UNAVAILABLE, CheckResult.UNCHECKED


@dataclass(frozen=True)
class Approval:
    number: str
    brand: Brand
    funding: Funding = Funding.CREDIT
    risk: Risk = Risk.NORMAL
    line1: CheckResult = P
    postal_code: CheckResult = P
    bypass_pending: bool = False
    dispute_expected: bool = False


APPROVALS = [
    Approval("4242424242424242", Brand.VISA),
    Approval("4000056655665556", Brand.VISA, Funding.DEBIT),
    Approval("5555555555554444", Brand.MASTERCARD),
    Approval("2223003122003222", Brand.MASTERCARD),
    Approval("5200828282828210", Brand.MASTERCARD, Funding.DEBIT),
    Approval("5105105105105100", Brand.MASTERCARD, Funding.PREPAID),
    Approval("378282246310005", Brand.AMEX),
    Approval("371449635398431", Brand.AMEX),
    Approval("6011111111111117", Brand.DISCOVER),
    Approval("6011000990139424", Brand.DISCOVER),
    Approval("6011981111111113", Brand.DISCOVER, Funding.DEBIT),
    Approval("3056930009020004", Brand.DINERS),
    Approval("36227206271667", Brand.DINERS),
    Approval("3566002020360505", Brand.JCB),
    Approval("6200000000000005", Brand.UNIONPAY),
    Approval("6200000000000047", Brand.UNIONPAY, Funding.DEBIT),
    Approval("6205500000000000004", Brand.UNIONPAY),
    # Any other Luhn-valid number is an ordinary approving card.
    Approval("4111111111111111", Brand.VISA),
    Approval("4000000000004954", Brand.VISA, risk=Risk.HIGHEST),
    Approval("4000000000009235", Brand.VISA, risk=Risk.ELEVATED),
    Approval("4000000000000077", Brand.VISA, bypass_pending=True),
    Approval("4000000000000259", Brand.VISA, dispute_expected=True),
    Approval("4000000000000010", Brand.VISA, line1=F, postal_code=F),
    Approval("4000000000000028", Brand.VISA, line1=F, postal_code=P),
    Approval("4000000000000036", Brand.VISA, line1=P, postal_code=F),
    Approval("4000000000000044", Brand.VISA, line1=U, postal_code=U),
]


@dataclass(frozen=True)
class Refusal:
    number: str
    code: str
    decline_code: str | None
    network_status: NetworkStatus = NetworkStatus.DECLINED_BY_NETWORK
    cvc_check: CheckResult = P
    risk: Risk = Risk.NORMAL


DECLINES = [
    Refusal("4000000000000002", "card_declined", "generic_decline"),
    Refusal("4000000000009995", "card_declined", "insufficient_funds"),
    Refusal("4000000000009987", "card_declined", "lost_card"),
    Refusal("4000000000009979", "card_declined", "stolen_card"),
    Refusal("4000000000000069", "expired_card", None),
    Refusal("4000000000000127", "incorrect_cvc", "incorrect_cvc", cvc_check=F),
    Refusal("4000000000000119", "processing_error", "processing_error"),
    Refusal("4000000000006975", "card_declined", "card_velocity_exceeded"),
    Refusal("4000000000000341", "card_declined", "generic_decline"),
    Refusal("4000000000000101", "incorrect_cvc", "incorrect_cvc", cvc_check=F),
    Refusal("4000002500003155", "card_declined", "authentication_required"),
    Refusal("4000002760003184", "card_declined", "authentication_required"),
    Refusal("4000000000003220", "card_declined", "authentication_required"),
    Refusal("4000008260003178", "card_declined", "authentication_required"),
    Refusal(
        "4100000000000019",
        "card_declined",
        "fraudulent",
        NetworkStatus.NOT_SENT_TO_NETWORK,
        cvc_check=N,
        risk=Risk.HIGHEST,
    ),
    Refusal(
        "4242424242424241", "incorrect_number", None, NetworkStatus.NOT_SENT_TO_NETWORK, cvc_check=N
    ),
]


@pytest.mark.parametrize("card", APPROVALS, ids=lambda card: card.number)
async def test_approving_cards_authorize_with_their_checks_and_hints(
    service: AcquirerService, card: Approval
) -> None:
    recorded = await service.authorize(authorization_request(card.number))
    result = recorded.operation.authorization_result
    assert result is not None
    assert (result.approved, result.code, result.decline_code) == (True, None, None)
    assert result.network_status is NetworkStatus.APPROVED_BY_NETWORK
    assert (result.cvc_check, result.address_line1_check, result.address_postal_code_check) == (
        P, card.line1, card.postal_code,
    )  # fmt: skip
    assert result.risk is card.risk
    assert (result.bypass_pending, result.dispute_expected) == (
        card.bypass_pending,
        card.dispute_expected,
    )
    assert result.authorization_code
    assert result.network_transaction_id
    assert result.authorization_id is not None
    authorization = await service.get_authorization(result.authorization_id)
    assert authorization.card.brand is card.brand
    assert authorization.card.funding is card.funding
    assert (authorization.card.bin, authorization.card.last4) == (card.number[:6], card.number[-4:])
    assert authorization.capturable_minor == 1000


@pytest.mark.parametrize("card", DECLINES, ids=lambda card: card.number)
async def test_declining_cards_answer_with_stripes_codes_and_hold_nothing(
    service: AcquirerService, card: Refusal
) -> None:
    recorded = await service.authorize(authorization_request(card.number, capture=True))
    operation = recorded.operation
    result = operation.authorization_result
    assert result is not None
    assert not result.approved
    assert not operation.approved
    assert (result.code, result.decline_code) == (card.code, card.decline_code)
    assert result.message
    assert result.network_status is card.network_status
    assert result.cvc_check is card.cvc_check
    assert result.risk is card.risk
    assert result.authorization_id is None
    assert operation.authorization_id is None
    assert not result.captured
    assert result.authorization_code is None
    assert operation.settled_at is None
    assert operation.fee_minor == 0


@pytest.mark.parametrize("number", ["4000002500003155", "4000002760003184", "4000000000003220"])
async def test_authentication_cards_approve_once_3d_secure_was_completed(
    service: AcquirerService, number: str
) -> None:
    recorded = await service.authorize(authorization_request(number, three_d_secure=True))
    assert recorded.operation.approved


async def test_the_authenticated_insufficient_funds_card_declines_once_3d_secure_was_completed(
    service: AcquirerService,
) -> None:
    """4000008260003178 needs 3-D Secure, and then is declined for insufficient funds."""
    recorded = await service.authorize(
        authorization_request("4000008260003178", three_d_secure=True)
    )
    result = recorded.operation.authorization_result
    assert result is not None
    assert (result.approved, result.code, result.decline_code) == (
        False,
        "card_declined",
        "insufficient_funds",
    )
    assert result.authorization_id is None


async def test_the_cvc_failure_card_approves_when_no_cvc_is_presented(
    service: AcquirerService,
) -> None:
    recorded = await service.authorize(authorization_request("4000000000000101", cvc=None))
    result = recorded.operation.authorization_result
    assert result is not None
    assert result.approved
    assert result.cvc_check is CheckResult.UNCHECKED


async def test_checks_without_a_billing_address_are_unchecked(service: AcquirerService) -> None:
    recorded = await service.authorize(
        authorization_request("4000000000000010", line1=None, postal_code=None)
    )
    result = recorded.operation.authorization_result
    assert result is not None
    assert result.approved
    assert result.address_line1_check is result.address_postal_code_check is N


async def test_a_card_past_its_expiry_month_declines_as_expired(service: AcquirerService) -> None:
    # The test clock reads 2031-03-14: February 2031 has passed, March 2031 has not.
    expired = await service.authorize(authorization_request(exp_month=2, exp_year=2031))
    current = await service.authorize(authorization_request(exp_month=3, exp_year=2031))
    result = expired.operation.authorization_result
    assert result is not None
    assert (result.code, result.decline_code) == ("expired_card", None)
    assert not expired.operation.approved
    assert current.operation.approved
