"""The REST facade's deadline for a call to the core leaves the core the time of its longest
step at the card network: a send the network is allowed `REMIT_NETWORK_TIMEOUT_S` for, through
the vault, after the core's own work before it. A deadline shorter than the core's steps
would cut a payment at the network part-way."""

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import pytest

from remit.grpcutil.deadlines import ANSWER_MARGIN_S
from remit.payments.send_budget import (
    BEFORE_SEND_S,
    MIN_CORE_CALL_S,
    authorization_needs_s,
    core_call_timeout_s,
)
from remit.rest import three_d_secure
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.grpc_call import call
from remit_api.payments.v1 import payments_pb2

pytestmark = pytest.mark.anyio


@dataclass
class _Context:
    response_headers: dict[str, str] = field(default_factory=dict)

    def grpc_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("remit-account-id", "acct_1"),)


async def _timeout_of_a_call() -> float:
    timeouts: list[float] = []

    async def answer() -> payments_pb2.GetPaymentIntentResponse:
        return payments_pb2.GetPaymentIntentResponse()

    def method(request: object, **options: Any) -> Any:
        timeouts.append(options["timeout"])
        return answer()

    await call(method, payments_pb2.GetPaymentIntentRequest(), cast(ApiContext, _Context()))
    [timeout] = timeouts
    return timeout


@pytest.mark.parametrize("network_timeout", ["10", "30", "120"])
async def test_the_core_has_time_for_a_whole_send(
    monkeypatch: pytest.MonkeyPatch, network_timeout: str
) -> None:
    monkeypatch.setenv("REMIT_NETWORK_TIMEOUT_S", network_timeout)
    timeout = await _timeout_of_a_call()
    assert timeout == core_call_timeout_s()
    assert timeout >= BEFORE_SEND_S + authorization_needs_s() + ANSWER_MARGIN_S
    assert timeout >= MIN_CORE_CALL_S


async def test_the_default_network_timeout_keeps_half_a_minute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REMIT_NETWORK_TIMEOUT_S", raising=False)
    assert await _timeout_of_a_call() == 30.0


class _RecordingPayments:
    def __init__(self) -> None:
        self.timeouts: list[float] = []

    async def CompleteThreeDSecureChallenge(  # noqa: N802 (the RPC name)
        self, request: object, **options: Any
    ) -> payments_pb2.CompleteThreeDSecureChallengeResponse:
        self.timeouts.append(options["timeout"])
        return payments_pb2.CompleteThreeDSecureChallengeResponse()


async def test_a_challenge_answered_on_the_page_gives_the_core_as_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The answer sends the authenticated attempt to the network, as a confirm does.
    monkeypatch.setenv("REMIT_NETWORK_TIMEOUT_S", "60")
    payments = _RecordingPayments()
    deps = cast(Dependencies, SimpleNamespace(payments=payments))
    await three_d_secure._complete(
        deps, "acct_1", "tdsc_1", payments_pb2.THREE_D_SECURE_CHALLENGE_OUTCOME_SUCCEED
    )
    assert payments.timeouts == [core_call_timeout_s()]
    assert core_call_timeout_s() > 60
