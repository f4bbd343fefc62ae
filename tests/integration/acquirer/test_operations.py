"""Captures, voids, refunds, lookups and idempotency against the real acquirer database."""

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.acquirer.domain import AuthorizationState, OperationKind
from remit.acquirer.repository import SqlAcquirerRepository
from remit.acquirer.service import AcquirerService
from remit.acquirer.tables import authorizations, operations
from remit.core.errors import ErrorKind, RemitError
from remit.core.ids import new_id
from tests.integration.acquirer.support import authorization_request
from tests.support.locks import until_a_session_waits_on_a_lock

pytestmark = pytest.mark.anyio


async def _count(engine: AsyncEngine, table: object, **where: str) -> int:
    query = select(func.count()).select_from(table)  # type: ignore[arg-type]
    for name, value in where.items():
        query = query.where(operations.c[name] == value)
    async with engine.connect() as db:
        return int((await db.execute(query)).scalar_one())


async def _authorized(service: AcquirerService, amount_minor: int = 1000) -> str:
    recorded = await service.authorize(authorization_request(amount_minor=amount_minor))
    assert recorded.operation.authorization_id is not None
    return recorded.operation.authorization_id


async def test_partial_captures_kept_open_then_refunds_move_the_authorization_along(
    service: AcquirerService,
) -> None:
    auth_id = await _authorized(service, 1000)
    first = await service.capture("cap-1", auth_id, 400, keep_open=True)
    second = await service.capture("cap-2", auth_id, 500, keep_open=False)
    assert first.operation.approved
    assert second.operation.approved
    assert first.operation.kind is OperationKind.CAPTURE
    authorization = await service.get_authorization(auth_id)
    assert authorization.captured_minor == 900
    assert authorization.state is AuthorizationState.CLOSED  # the last 100 was released

    late = await service.capture("cap-3", auth_id, 100, keep_open=False)
    assert not late.operation.approved
    assert late.operation.code == "charge_already_captured"

    refund_a = await service.refund("ref-1", auth_id, 600)
    refund_b = await service.refund("ref-2", auth_id, 301)
    refund_c = await service.refund("ref-3", auth_id, 300)
    assert refund_a.operation.approved
    assert not refund_b.operation.approved
    assert refund_b.operation.code == "amount_too_large"
    assert refund_c.operation.approved
    final = await service.get_authorization(auth_id)
    assert (final.captured_minor, final.refunded_minor) == (900, 900)
    again = await service.refund("ref-4", auth_id, 1)
    assert again.operation.code == "charge_already_refunded"


async def test_a_capture_larger_than_the_authorization_is_recorded_as_refused(
    service: AcquirerService,
) -> None:
    auth_id = await _authorized(service, 1000)
    over = await service.capture("cap-over", auth_id, 1001, keep_open=False)
    assert not over.operation.approved
    assert over.operation.code == "amount_too_large"
    assert over.operation.settled_at is None
    looked_up = await service.lookup("cap-over")
    assert looked_up == over.operation
    assert (await service.get_authorization(auth_id)).capturable_minor == 1000


async def test_a_void_releases_the_hold_and_later_captures_are_refused(
    service: AcquirerService,
) -> None:
    auth_id = await _authorized(service, 1000)
    voided = await service.void("void-1", auth_id)
    assert voided.operation.approved
    assert voided.operation.amount_minor == 1000
    capture = await service.capture("cap-after-void", auth_id, 10, keep_open=False)
    assert capture.operation.code == "authorization_voided"
    refund = await service.refund("ref-after-void", auth_id, 10)
    assert refund.operation.code == "charge_not_captured"


async def test_a_sale_is_captured_in_the_authorization_and_cannot_be_voided(
    service: AcquirerService,
) -> None:
    sale = await service.authorize(authorization_request(amount_minor=2500, capture=True))
    result = sale.operation.authorization_result
    assert result is not None
    assert result.captured
    assert sale.operation.fee_minor == 38  # 37.5 rounds half to even
    auth_id = sale.operation.authorization_id
    assert auth_id is not None
    void = await service.void("void-sale", auth_id)
    assert not void.operation.approved
    assert void.operation.code == "charge_already_captured"


async def test_operations_on_an_unknown_authorization_are_not_found_and_not_recorded(
    service: AcquirerService,
) -> None:
    for call in (
        service.capture("cap-x", "auth_missing", 10, keep_open=False),
        service.void("void-x", "auth_missing"),
        service.refund("ref-x", "auth_missing", 10),
    ):
        with pytest.raises(RemitError) as caught:
            await call
        assert caught.value.kind is ErrorKind.NOT_FOUND
        assert caught.value.param == "authorization_id"
    for reference in ("cap-x", "void-x", "ref-x"):
        with pytest.raises(RemitError) as missing:
            await service.lookup(reference)
        assert missing.value.kind is ErrorKind.NOT_FOUND


async def test_a_repeated_reference_replays_the_first_result_even_without_the_cvc(
    service: AcquirerService, acquirer_engine: AsyncEngine
) -> None:
    first = await service.authorize(authorization_request(reference="auth-ref"))
    retry = await service.authorize(authorization_request(reference="auth-ref", cvc=None))
    assert not first.replayed
    assert retry.replayed
    assert retry.operation == first.operation
    assert await _count(acquirer_engine, operations) == 1
    assert await _count(acquirer_engine, authorizations) == 1


async def test_a_declined_authorization_replays_its_decline(service: AcquirerService) -> None:
    first = await service.authorize(authorization_request("4000000000009995", reference="d-1"))
    retry = await service.authorize(authorization_request("4000000000009995", reference="d-1"))
    assert retry.replayed
    assert retry.operation == first.operation
    assert retry.operation.code == "card_declined"


async def test_captures_refunds_and_voids_replay_by_reference(service: AcquirerService) -> None:
    auth_id = await _authorized(service, 1000)
    capture = await service.capture("cap-r", auth_id, 1000, keep_open=False)
    refund = await service.refund("ref-r", auth_id, 250)
    capture_again = await service.capture("cap-r", auth_id, 1000, keep_open=False)
    refund_again = await service.refund("ref-r", auth_id, 250)
    assert capture_again.replayed
    assert capture_again.operation == capture.operation
    assert refund_again.replayed
    assert refund_again.operation == refund.operation
    assert (await service.get_authorization(auth_id)).refunded_minor == 250

    other = await _authorized(service, 1000)
    void = await service.void("void-r", other)
    assert (await service.void("void-r", other)).operation == void.operation


@pytest.mark.parametrize(
    "changed",
    [
        {"amount_minor": 1001},
        {"currency": "eur"},
        {"capture": True},
        {"number": "5555555555554444"},
        {"three_d_secure": True},
        {"merchant_id": "acct_1SomeoneElse"},
    ],
    ids=lambda changed: next(iter(changed)),
)
async def test_a_reference_reused_with_other_parameters_is_refused(
    service: AcquirerService, changed: dict[str, object]
) -> None:
    await service.authorize(authorization_request(reference="reused"))
    with pytest.raises(RemitError) as caught:
        await service.authorize(authorization_request(reference="reused", **changed))  # type: ignore[arg-type]
    assert caught.value.kind is ErrorKind.FAILED_PRECONDITION
    assert caught.value.code == "reference_reused"
    assert caught.value.error_type == "idempotency_error"


async def test_a_reference_cannot_be_reused_across_operation_kinds(
    service: AcquirerService,
) -> None:
    auth_id = await _authorized(service)
    await service.capture("shared", auth_id, 100, keep_open=True)
    with pytest.raises(RemitError) as caught:
        await service.refund("shared", auth_id, 100)
    assert caught.value.code == "reference_reused"
    with pytest.raises(RemitError):
        await service.capture("shared", auth_id, 200, keep_open=True)


async def test_fifty_concurrent_identical_authorizations_record_one_operation(
    service: AcquirerService, acquirer_engine: AsyncEngine
) -> None:
    request = authorization_request(reference="concurrent-auth", capture=True)
    results = await asyncio.gather(*(service.authorize(request) for _ in range(50)))
    assert await _count(acquirer_engine, operations) == 1
    assert await _count(acquirer_engine, authorizations) == 1
    assert sum(not recorded.replayed for recorded in results) == 1
    assert len({recorded.operation.id for recorded in results}) == 1
    assert len({recorded.operation.authorization_id for recorded in results}) == 1


@pytest.mark.parametrize("same_request", [True, False], ids=["same", "different"])
async def test_an_authorization_that_loses_the_race_on_its_reference_replays_the_winner(
    service: AcquirerService, acquirer_engine: AsyncEngine, same_request: bool
) -> None:
    # The winner's operation and authorization are written but not yet committed, so the
    # loser's statement waits on the unique index and its snapshot never sees the winner.
    request = authorization_request(reference="raced-auth")
    winner, held = service._decide_authorization(request, request.fingerprint())
    written = asyncio.Event()
    release = asyncio.Event()

    async def win() -> None:
        async with acquirer_engine.begin() as db:
            outcome = await SqlAcquirerRepository(db).record_authorization(winner, held)
            assert outcome.recorded
            written.set()
            await release.wait()

    holding = asyncio.create_task(win())
    # Told by the winner itself once its writes are done: a session seen idle in its
    # transaction may be between two of them, before the reference is held.
    await _until_written(written, holding)
    loser = authorization_request(reference="raced-auth", amount_minor=1000 if same_request else 7)
    losing = asyncio.create_task(service.authorize(loser))
    await until_a_session_waits_on_a_lock(acquirer_engine, contender=losing)
    assert not losing.done()
    release.set()
    await holding
    if same_request:
        recorded = await losing
        assert recorded.replayed
        assert recorded.operation == winner
    else:
        with pytest.raises(RemitError) as refused:
            await losing
        assert refused.value.code == "reference_reused"
    assert await _count(acquirer_engine, operations) == 1
    assert await _count(acquirer_engine, authorizations) == 1


async def _until_written(written: asyncio.Event, winner: "asyncio.Task[None]") -> None:
    waiting = asyncio.create_task(written.wait())
    done, _ = await asyncio.wait({waiting, winner}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if waiting not in done:
        waiting.cancel()
        if winner.done():
            winner.result()  # raises what stopped the winner
        raise AssertionError("the winner never wrote its operation")


async def test_fifty_concurrent_identical_captures_capture_once(
    service: AcquirerService, acquirer_engine: AsyncEngine
) -> None:
    auth_id = await _authorized(service, 1000)
    results = await asyncio.gather(
        *(service.capture("concurrent-cap", auth_id, 700, keep_open=True) for _ in range(50))
    )
    assert sum(not recorded.replayed for recorded in results) == 1
    assert all(recorded.operation.approved for recorded in results)
    assert await _count(acquirer_engine, operations, kind="capture") == 1
    assert (await service.get_authorization(auth_id)).captured_minor == 700


async def test_concurrent_refunds_never_exceed_the_captured_amount(
    service: AcquirerService,
) -> None:
    sale = await service.authorize(authorization_request(amount_minor=1000, capture=True))
    auth_id = sale.operation.authorization_id
    assert auth_id is not None
    results = await asyncio.gather(*(service.refund(f"race-{n}", auth_id, 300) for n in range(10)))
    approved = [recorded for recorded in results if recorded.operation.approved]
    assert len(approved) == 3
    assert {r.operation.code for r in results if not r.operation.approved} == {"amount_too_large"}
    assert (await service.get_authorization(auth_id)).refunded_minor == 900


@pytest.mark.parametrize(
    ("changes", "param", "code"),
    [
        ({"reference": ""}, "reference", "parameter_missing"),
        ({"reference": "r" * 256}, "reference", "parameter_invalid"),
        ({"amount_minor": 0}, "amount", "amount_too_small"),
        ({"amount_minor": 100_000_000}, "amount", "amount_too_large"),
        ({"number": "4242-4242-4242-4242"}, "card_number", "invalid_number"),
        ({"number": "42424242"}, "card_number", "invalid_number"),
        ({"exp_month": 13}, "exp_month", "invalid_expiry_month"),
        ({"exp_year": 34}, "exp_year", "invalid_expiry_year"),
        ({"cvc": "12a"}, "cvc", "invalid_cvc"),
        ({"currency": "zzz"}, "currency", "invalid_currency"),
        ({"merchant_id": "merchant-1"}, "merchant_id", "parameter_invalid"),
    ],
)
async def test_malformed_authorizations_are_rejected_precisely_and_not_recorded(
    service: AcquirerService,
    acquirer_engine: AsyncEngine,
    changes: dict[str, object],
    param: str,
    code: str,
) -> None:
    with pytest.raises(RemitError) as caught:
        await service.authorize(authorization_request(**changes))  # type: ignore[arg-type]
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT
    assert (caught.value.param, caught.value.code) == (param, code)
    assert "4242" not in caught.value.message
    assert await _count(acquirer_engine, operations) == 0


async def test_captures_and_refunds_need_a_positive_amount(service: AcquirerService) -> None:
    auth_id = await _authorized(service)
    for call in (
        service.capture(new_id("op"), auth_id, 0, keep_open=False),
        service.refund(new_id("op"), auth_id, -5),
    ):
        with pytest.raises(RemitError) as caught:
            await call
        assert caught.value.param == "amount"
