"""A card details update the vault did not answer in time is a retryable refusal, not a 500."""

import asyncio
from typing import Any

import grpc
import pytest

from remit.core.errors import ErrorKind, RemitError
from remit.payment_methods.vault_client import GrpcCardVault


class _Stub:
    def __init__(self, code: grpc.StatusCode) -> None:
        self.code = code

    async def UpdateCardDetails(self, request: Any, **options: Any) -> Any:  # noqa: N802
        raise grpc.aio.AioRpcError(self.code, grpc.aio.Metadata(), grpc.aio.Metadata(), "no")


def _vault(code: grpc.StatusCode) -> GrpcCardVault:
    vault = GrpcCardVault.__new__(GrpcCardVault)
    vault.requester = "core"
    vault._stub = _Stub(code)  # type: ignore[assignment]
    return vault


def _refusal(code: grpc.StatusCode) -> RemitError:
    with pytest.raises(RemitError) as refused:
        asyncio.run(
            _vault(code).update_card_details(
                "acct_1", "vtok_1", expiry=(12, 2040), billing_details=None
            )
        )
    return refused.value


def test_a_lapsed_deadline_is_a_retryable_unavailable() -> None:
    error = _refusal(grpc.StatusCode.DEADLINE_EXCEEDED)
    assert error.kind is ErrorKind.UNAVAILABLE
    assert error.should_retry is True
    assert "vtok_" not in error.message


def test_another_failure_keeps_its_own_mapping() -> None:
    error = _refusal(grpc.StatusCode.INTERNAL)
    assert error.kind is ErrorKind.INTERNAL
    assert error.should_retry is False
