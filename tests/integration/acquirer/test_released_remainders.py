"""A partial capture releases the rest of the authorization back to the cardholder, and the
acquirer records the release with the capture: in the capture's own operation, found again by
its reference, and in its settlement row. An authorization's amount is then what it captured
plus what it released."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.acquirer.domain import AuthorizationState
from remit.acquirer.service import AcquirerService
from remit.acquirer.tables import operations
from tests.integration.acquirer.support import NOW, authorization_request

pytestmark = pytest.mark.anyio


async def _authorized(service: AcquirerService, amount_minor: int) -> str:
    recorded = await service.authorize(authorization_request(amount_minor=amount_minor))
    assert recorded.operation.authorization_id is not None
    return recorded.operation.authorization_id


async def _stored_releases(engine: AsyncEngine, authorization_id: str) -> list[tuple[str, int]]:
    c = operations.c
    async with engine.connect() as db:
        rows = await db.execute(
            select(c.kind, c.released_minor).where(c.authorization_id == authorization_id)
        )
        return sorted((row.kind, row.released_minor) for row in rows)


async def test_a_partial_capture_records_the_release_of_the_rest_with_the_capture(
    service: AcquirerService, acquirer_engine: AsyncEngine
) -> None:
    auth_id = await _authorized(service, 5000)
    captured = await service.capture("cap-partial", auth_id, 3000, keep_open=False)
    assert captured.operation.approved
    assert (captured.operation.amount_minor, captured.operation.released_minor) == (3000, 2000)

    authorization = await service.get_authorization(auth_id)
    assert authorization.state is AuthorizationState.CLOSED
    assert (
        authorization.authorized_minor,
        authorization.captured_minor,
        authorization.released_minor,
        authorization.capturable_minor,
    ) == (5000, 3000, 2000, 0)
    # One operation under the reference, the capture, which carries the release.
    assert await _stored_releases(acquirer_engine, auth_id) == [
        ("authorize", 0),
        ("capture", 2000),
    ]
    # The look-up by reference settles an unknown outcome with the release in it, once.
    assert await service.lookup("cap-partial") == captured.operation
    replayed = await service.capture("cap-partial", auth_id, 3000, keep_open=False)
    assert replayed.replayed
    assert replayed.operation == captured.operation

    # Nothing is capturable any more: the network refuses a second capture, which releases
    # nothing.
    again = await service.capture("cap-again", auth_id, 1000, keep_open=False)
    assert not again.operation.approved
    assert again.operation.code == "charge_already_captured"
    assert again.operation.released_minor == 0
    after = await service.get_authorization(auth_id)
    assert (after.captured_minor, after.released_minor) == (3000, 2000)


async def test_a_full_capture_and_a_sale_release_nothing(service: AcquirerService) -> None:
    auth_id = await _authorized(service, 1200)
    full = await service.capture("cap-full", auth_id, 1200, keep_open=False)
    assert full.operation.released_minor == 0
    assert (await service.get_authorization(auth_id)).released_minor == 0
    sale = await service.authorize(authorization_request(amount_minor=800, capture=True))
    assert sale.operation.released_minor == 0
    assert sale.operation.authorization_id is not None
    assert (await service.get_authorization(sale.operation.authorization_id)).released_minor == 0


async def test_captures_kept_open_release_only_when_the_last_one_closes_the_authorization(
    service: AcquirerService, acquirer_engine: AsyncEngine
) -> None:
    auth_id = await _authorized(service, 1000)
    first = await service.capture("cap-1", auth_id, 400, keep_open=True)
    assert first.operation.released_minor == 0
    held = await service.get_authorization(auth_id)
    assert (held.released_minor, held.capturable_minor) == (0, 600)
    last = await service.capture("cap-2", auth_id, 500, keep_open=False)
    assert last.operation.released_minor == 100
    closed = await service.get_authorization(auth_id)
    assert closed.authorized_minor == closed.captured_minor + closed.released_minor

    other = await _authorized(service, 1000)
    await service.capture("cap-3", other, 250, keep_open=True)
    voided = await service.void("void-3", other)
    # A void after a kept-open capture releases the rest, and records it the same way.
    assert (voided.operation.amount_minor, voided.operation.released_minor) == (750, 750)
    after_void = await service.get_authorization(other)
    assert (after_void.captured_minor, after_void.released_minor) == (250, 750)
    assert await _stored_releases(acquirer_engine, other) == [
        ("authorize", 0),
        ("capture", 0),
        ("void", 750),
    ]


async def test_concurrent_copies_of_a_partial_capture_record_one_capture_and_one_release(
    service: AcquirerService, acquirer_engine: AsyncEngine
) -> None:
    auth_id = await _authorized(service, 1000)
    results = await asyncio.gather(
        *(service.capture("cap-race", auth_id, 300, keep_open=False) for _ in range(20))
    )
    assert sum(not recorded.replayed for recorded in results) == 1
    assert {recorded.operation.released_minor for recorded in results} == {700}
    assert await _stored_releases(acquirer_engine, auth_id) == [
        ("authorize", 0),
        ("capture", 700),
    ]


async def test_the_settlement_report_carries_each_captures_release(
    service: AcquirerService,
) -> None:
    auth_id = await _authorized(service, 5000)
    await service.capture("cap-settled", auth_id, 3000, keep_open=False)
    await service.refund("ref-settled", auth_id, 1000)
    await service.authorize(
        authorization_request(reference="sale-settled", amount_minor=700, capture=True)
    )
    page = await service.settlement_page(NOW.date())
    by_reference = {row.reference: (row.kind.value, row.amount_minor, row.released_minor)
                    for row in page.rows}  # fmt: skip
    assert by_reference == {
        "cap-settled": ("capture", 3000, 2000),
        "ref-settled": ("refund", 1000, 0),
        "sale-settled": ("capture", 700, 0),
    }
    # The void of an authorization settles nothing, so is in no report.
    voided = await _authorized(service, 400)
    await service.void("void-unsettled", voided)
    later = await service.settlement_page(NOW.date())
    assert {row.reference for row in later.rows} == set(by_reference)
    assert (await service.settlement_page(NOW.date() + timedelta(days=1))).rows == []
