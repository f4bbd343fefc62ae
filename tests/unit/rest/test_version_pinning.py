"""An account's first request pins its API version through the core, under a deadline."""

import asyncio
from typing import Any, cast

import pytest

from remit.accounts.domain import KeyKind, Principal
from remit.rest.dependencies import PIN_TIMEOUT_S, Dependencies
from remit_api.accounts.v1 import accounts_pb2


class _Accounts:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def PinApiVersion(  # noqa: N802 (the stub's method name)
        self, request: accounts_pb2.PinApiVersionRequest, **options: Any
    ) -> accounts_pb2.PinApiVersionResponse:
        self.calls.append({"request": request, **options})
        return accounts_pb2.PinApiVersionResponse(api_version=request.api_version)


class _Authenticator:
    def forget(self, principal: Principal) -> None:
        pass


def test_pinning_an_accounts_version_is_a_call_with_a_deadline() -> None:
    accounts = _Accounts()
    unused = cast(Any, None)
    deps = Dependencies(
        core_channel=unused, accounts=cast(Any, accounts), payments=unused, webhooks=unused,
        ledger=unused, authenticator=cast(Any, _Authenticator()), radar=unused,
        vault_channel=unused, vault=unused,
    )  # fmt: skip
    principal = Principal(
        account_id="acct_1", key_id="key_1", key_kind=KeyKind.SECRET, livemode=False,
        api_version=None, raw_card_access=False,
    )  # fmt: skip
    versions = asyncio.run(deps.resolve_version(principal, None))
    assert versions.account == versions.request
    (call,) = accounts.calls
    assert call["request"].account_id == "acct_1"
    assert call["timeout"] == pytest.approx(PIN_TIMEOUT_S)
