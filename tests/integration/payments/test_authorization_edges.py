"""An authorization's edges: a capture the network answers after the 7 days, a cancel resumed
after a confirmation authorized the intent, the reference a 3-D Secure payment settles under,
what a refund the network refuses shows. Against a real PostgreSQL, with the ledger's hooks and
an in-process card network."""

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.ledger.verify import verify_ledger
from remit.payments.charges import RefundStatus
from remit.payments.domain import (
    CancellationReason,
    CaptureMethod,
    NewPaymentIntent,
    PaymentIntent,
    Status,
)
from remit.payments.grpc import payment_intent_message, refund_message
from remit.payments.idempotency import KeyRecord
from remit.payments.ledger_postings import LedgerPostings
from remit.payments.network import OperationOutcome
from remit.payments.ports import HookChain
from remit.payments.service import ConfirmParams, Done, PaymentsService, Replay
from tests.integration.payments.conftest import FakeMethods
from tests.integration.payments.test_payments_service import call, pay, refund_intent, respond
from tests.support.authorizations import let_authorization_expire
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class SlowCaptureNetwork(FakeNetwork):
    """A network whose capture takes `capture_latency_s` of (fixed-clock) time to answer, and
    which, like the real acquirer (`acquirer.domain.void`), refuses to void an authorization
    it has captured."""

    def __init__(self, clock: FixedClock, capture_latency_s: float) -> None:
        super().__init__()
        self._clock = clock
        self._latency_s = capture_latency_s
        self.captured_authorizations: set[str] = set()

    async def capture(
        self, *, authorization_id: str, amount_minor: int, reference: str
    ) -> OperationOutcome:
        outcome = await super().capture(
            authorization_id=authorization_id, amount_minor=amount_minor, reference=reference
        )
        if outcome.approved:
            self.captured_authorizations.add(authorization_id)
        self._clock.advance(self._latency_s)
        return outcome

    async def void(self, *, authorization_id: str, reference: str) -> OperationOutcome:
        if authorization_id in self.captured_authorizations and reference not in self.operations:
            self.refuse(
                reference,
                "charge_already_captured",
                "This authorization was already captured; refund it instead.",
            )
        return await super().void(authorization_id=authorization_id, reference=reference)


async def _captured_one_second_before_the_limit(
    core_engine: AsyncEngine, key: str
) -> tuple[PaymentsService, SlowCaptureNetwork, FixedClock, str, PaymentIntent]:
    """An intent authorized, then captured 1 s before its 7 days end, the network answering
    2 s later; returns the service, network, clock, account and the capture's intent."""
    clock = FixedClock(START)
    network = SlowCaptureNetwork(clock, capture_latency_s=2)
    payments = PaymentsService(
        core_engine,
        network,
        FakeMethods(),
        present=payment_intent_message,
        hooks=HookChain([LedgerPostings(clock)]),
        clock=clock,
    )
    account_id = (await AccountsService(core_engine).create_account()).account.id
    held = await pay(payments, account_id, key, capture=CaptureMethod.MANUAL)
    assert held.status is Status.REQUIRES_CAPTURE
    clock.advance(timedelta(days=7).total_seconds() - 1)
    captured = await payments.capture_payment_intent(
        call(account_id, f"{key}-capture", endpoint="CapturePaymentIntent"), held.id, None, respond
    )
    assert isinstance(captured, Done)
    return payments, network, clock, account_id, captured.value


async def test_a_capture_the_network_approves_after_the_seven_day_limit_is_recorded(
    core_engine: AsyncEngine,
) -> None:
    """The network took the money, so the intent is succeeded and its ledger holds the
    capture (the lapsed reservation could have refused the posting, rolling the outcome back
    and leaving the intent requires_capture for good)."""
    payments, network, clock, account_id, captured = await _captured_one_second_before_the_limit(
        core_engine, "edge"
    )
    assert (captured.status, captured.amount_received_minor) == (Status.SUCCEEDED, 1000)
    operation = network.operations.get(f"{captured.latest_charge_id}_capture")
    assert operation is not None
    assert operation.approved
    stored = await payments.get_payment_intent(account_id, captured.id)
    assert stored.status is Status.SUCCEEDED
    async with core_engine.connect() as db:
        report = await verify_ledger(db, now=clock.now())
    assert report.ok, (report.differences, report.chain_breaks)


async def test_after_such_a_capture_the_expiry_job_leaves_the_succeeded_intent_alone(
    core_engine: AsyncEngine,
) -> None:
    """The expiry job, due at the same moment, finds the intent succeeded: it neither voids
    (the network would refuse: captured) nor cancels."""
    payments, network, _, account_id, captured = await _captured_one_second_before_the_limit(
        core_engine, "edge-expiry"
    )
    async with core_engine.begin() as db:
        assert not await payments.expire_authorization(db, account_id, captured.id)
    after = await payments.get_payment_intent(account_id, captured.id)
    assert after.status is Status.SUCCEEDED
    assert f"{captured.latest_charge_id}_void" not in network.sent


async def test_a_3ds_payment_captured_at_once_records_the_reference_the_network_settled_under(
    core_engine: AsyncEngine,
) -> None:
    """After 3-D Secure the authorization (captured at once) is sent under `<charge>_3ds`
    (`risk.network_reference`), and the acquirer's settlement report lists the capture under
    that reference. The balance transaction names the same one, or reconciliation would
    report every such payment missing on both sides."""
    from remit.ledger.balance_repository import BalanceRepository
    from remit.ledger.objects import BalanceTransactionType
    from remit.radar.authentication import ThreeDSecureService
    from remit.radar.gate import Radar
    from tests.integration.radar.test_radar_in_payments import Methods, _built
    from tests.integration.radar.test_radar_in_payments import pay as pay_3ds

    clock = FixedClock(START)

    class Parts:
        network = FakeNetwork()
        gate = Radar(challenge_base_url="http://remit.test", clock=clock)
        payments = PaymentsService(
            core_engine,
            network,
            Methods(),
            present=payment_intent_message,
            clock=clock,
            radar=gate,
            hooks=HookChain([LedgerPostings(clock)]),
        )
        three_d_secure = ThreeDSecureService(
            core_engine, payments, Methods(), gate, HookChain([LedgerPostings(clock)]), clock=clock
        )

    parts = Parts()
    account_id = (await AccountsService(core_engine).create_account()).account.id
    intent = await pay_3ds(parts, account_id, "3ds", request_three_d_secure="any")  # type: ignore[arg-type]
    assert intent.status is Status.REQUIRES_ACTION
    assert intent.next_action is not None
    redirect = intent.next_action["redirect_to_url"]
    assert isinstance(redirect, dict)
    challenge_id = str(redirect["url"]).rsplit("/", 1)[1]
    done = await parts.three_d_secure.complete(account_id, challenge_id, passed=True, build=_built)
    assert isinstance(done, Done)
    assert done.value[1].status is Status.SUCCEEDED
    charge_id = intent.latest_charge_id or ""
    assert parts.network.sent == [f"{charge_id}_3ds"]
    async with core_engine.connect() as db:
        (txn,) = await BalanceRepository(db).balance_transactions_for_charge(
            account_id, charge_id, [BalanceTransactionType.CHARGE]
        )
    assert txn.acquirer_reference == f"{charge_id}_3ds"


async def _cancel_cut_off_then_confirmed(
    payments: PaymentsService, account_id: str, key: str
) -> tuple[KeyRecord, PaymentIntent]:
    """A cancel whose first phase ran while nothing was authorized and whose request was then
    cut off, and a confirmation since that holds 1000 at the network."""
    created = await payments.create_payment_intent(
        call(account_id, f"{key}-pi"),
        NewPaymentIntent(amount_minor=1000, currency="usd", capture_method=CaptureMethod.MANUAL),
        respond,
    )
    assert isinstance(created, Done)
    record = await payments._claim(call(account_id, key, endpoint="CancelPaymentIntent"))
    record = await payments._start_cancel(record, created.value.id)
    confirmed = await payments.confirm_payment_intent(
        call(account_id, f"{key}-confirm", endpoint="ConfirmPaymentIntent"),
        created.value.id,
        ConfirmParams(payment_method_id="pm_visa"),
        respond,
    )
    assert isinstance(confirmed, Done)
    assert confirmed.value.status is Status.REQUIRES_CAPTURE
    return record, confirmed.value


async def test_a_resumed_cancel_releases_an_authorization_made_after_it_started(
    payments: PaymentsService, network: FakeNetwork, account_id: str
) -> None:
    """A cancel's first phase found nothing to release; resumed later (its client's retry
    after a crash or a failed last phase, or the completer) after a confirmation authorized
    the intent meanwhile, it voids that authorization before canceling. Otherwise the
    network would keep the hold on the customer's card while remit and its ledger said it was
    released."""
    record, confirmed = await _cancel_cut_off_then_confirmed(payments, account_id, "late-cancel")
    resumed = await payments.resume_cancel(record, None, respond)
    assert isinstance(resumed, Done)
    assert resumed.value.status is Status.CANCELED
    assert f"{confirmed.latest_charge_id}_void" in network.sent


async def test_a_cancel_that_missed_an_authorization_refuses_rather_than_cancel_over_it(
    payments: PaymentsService,
    network: FakeNetwork,
    account_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Should the authorization land after the cancel looked for one (here: it looks too
    early), the cancel does not cancel over a hold it did not release: it answers a conflict,
    the intent stays requires_capture, and a retry releases and cancels."""
    record, confirmed = await _cancel_cut_off_then_confirmed(payments, account_id, "raced")

    async def looked_too_early(account_id: str, intent_id: str) -> str | None:
        return None

    monkeypatch.setattr(payments, "_authorized_charge", looked_too_early)
    with pytest.raises(RemitError) as refused:
        await payments.resume_cancel(record, None, respond)
    assert refused.value.kind is ErrorKind.CONFLICT
    still = await payments.get_payment_intent(account_id, confirmed.id)
    assert still.status is Status.REQUIRES_CAPTURE
    assert f"{confirmed.latest_charge_id}_void" not in network.sent
    monkeypatch.undo()
    retried = await payments.resume_cancel(record, None, respond)
    assert isinstance(retried, Done)
    assert retried.value.status is Status.CANCELED
    assert f"{confirmed.latest_charge_id}_void" in network.sent


async def test_a_cancel_resumed_after_the_expiry_job_canceled_the_intent_stores_its_refusal(
    payments: PaymentsService, core_engine: AsyncEngine, account_id: str
) -> None:
    """The intent is canceled already (expired): this cancel cannot happen, and that is its
    outcome, stored under its key, so that neither its retries nor the completer try it again
    every few seconds for the key's whole life."""
    held = await pay(payments, account_id, "expired-first", capture=CaptureMethod.MANUAL)
    record = await payments._claim(call(account_id, "late", endpoint="CancelPaymentIntent"))
    record = await payments._start_cancel(record, held.id)
    await let_authorization_expire(core_engine, held.id)
    async with core_engine.begin() as db:
        assert await payments.expire_authorization(db, account_id, held.id)
    with pytest.raises(RemitError) as refused:
        await payments.resume_cancel(record, None, respond)
    assert refused.value.kind is ErrorKind.FAILED_PRECONDITION
    retried = await payments.cancel_payment_intent(
        call(account_id, "late", endpoint="CancelPaymentIntent"), held.id, None, respond
    )
    assert isinstance(retried, Replay)
    assert retried.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    expired = await payments.get_payment_intent(account_id, held.id)
    assert expired.cancellation_reason is CancellationReason.EXPIRED


class RefusingRefunds(FakeNetwork):
    """A network that refuses every refund with `code`."""

    def __init__(self, code: str) -> None:
        super().__init__()
        self._code = code

    async def refund(
        self, *, authorization_id: str, amount_minor: int, reference: str
    ) -> OperationOutcome:
        self.refuse(reference, self._code, "refused")
        return await super().refund(
            authorization_id=authorization_id, amount_minor=amount_minor, reference=reference
        )


@pytest.mark.parametrize(
    ("network_code", "shown"),
    [("insufficient_funds", "insufficient_funds"), ("amount_too_large", "unknown")],
)
async def test_a_refused_refund_shows_one_of_stripes_failure_reasons(
    core_engine: AsyncEngine, account_id: str, network_code: str, shown: str
) -> None:
    """A network's code that is one of Stripe's failure reasons shows as it is; any other (the
    acquirer's, which says remit and the network disagree) shows as `unknown`."""
    payments = PaymentsService(
        core_engine, RefusingRefunds(network_code), FakeMethods(), present=payment_intent_message
    )
    intent = await pay(payments, account_id, f"refused-{network_code}")
    refunded = await refund_intent(payments, account_id, f"r-{network_code}", intent.id, 100)
    assert isinstance(refunded, Done)
    assert refunded.value.status is RefundStatus.FAILED
    assert refunded.value.failure_reason == network_code  # kept as the network gave it
    assert refund_message(refunded.value).failure_reason == shown
