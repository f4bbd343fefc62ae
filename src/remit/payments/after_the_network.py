"""What a request is told when recording what the card network has already done fails.

A confirmation (its authorization, captured at once or not), a capture, cancel or refund
records the network's answer in its last phase, and the ledger books it there (the hooks). Once
the network has authorized, captured, voided or refunded, nothing the client sent can be wrong
any more: a refusal from the ledger then (a reservation in an
unexpected state, say) is remit's own failure. Passed on as it is, it would reach the client as
a 400, which the SDKs do not retry, while the request waits at its recovery point for a retry
that would finish it. So it is turned into a retryable 500 `api_error` (`Stripe-Should-Retry:
true`); nothing is committed, and the retry (or the completer) resumes the request from its
recovery point, looking the operation up at the network first.

A write the database refuses as over one of its limits (SQLSTATE class 54) fails the same way
on every try, so that 500 does not invite a retry: the request stays held at its recovery point
(`remit held-requests list`) for an operator, and the completer leaves it alone.
"""

import logging
from collections.abc import Awaitable
from typing import TypeVar

from remit.core.errors import ErrorKind, RemitError
from remit.storage.driver_errors import DatabaseFault, database_fault

log = logging.getLogger(__name__)

T = TypeVar("T")


def recording_over_a_limit() -> RemitError:
    return RemitError(
        message="An unexpected error occurred while recording what the card network did for "
        "this request, and retrying will not help: the request is held for the platform's "
        "operators, who have been alerted.",
        kind=ErrorKind.INTERNAL,
        error_type="api_error",
        should_retry=False,
    )


def recording_failed() -> RemitError:
    return RemitError(
        message="An unexpected error occurred while recording what the card network did for "
        "this request. Retry with the same idempotency key: the request resumes where it "
        "stopped.",
        kind=ErrorKind.INTERNAL,
        error_type="api_error",
        should_retry=True,
    )


async def recorded_after_the_network(step: Awaitable[T], *, what: str) -> T:
    """Run `step`, which records `what` the network has done; a refusal it raises becomes
    `recording_failed` (logged for an operator, who may have to look at the ledger), raised from
    the refusal, which a held request's failure keeps (`held_requests.failure_of`), and a
    database limit it meets becomes `recording_over_a_limit`."""
    try:
        return await step
    except RemitError as error:
        log.error(
            "could not record %s, which the card network has made: %s (%s); the request waits "
            "at its recovery point",
            what,
            error.code or error.kind.name,
            error.message,
        )
        raise recording_failed() from error
    except Exception as error:
        if database_fault(error) is not DatabaseFault.OVER_LIMIT:
            raise
        log.exception(
            "could not record %s, which the card network has made: the database refused a "
            "write as over one of its limits; the request is held at its recovery point",
            what,
        )
        raise recording_over_a_limit() from error
