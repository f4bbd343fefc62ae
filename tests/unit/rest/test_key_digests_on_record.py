"""Reading the keys on record warns when the accounts service has more working keys than one
answer lists: the oldest are then unknown to the bypass for an address out of failed
authentications."""

import logging
from typing import Any

import pytest

from remit.accounts.domain import MAX_LISTED_KEY_DIGESTS
from remit.rest.key_lookup import key_digests_on_record
from remit_api.accounts.v1 import accounts_pb2

pytestmark = pytest.mark.anyio


class Accounts:
    def __init__(self, reply: accounts_pb2.ListKeyDigestsResponse) -> None:
        self.reply = reply
        self.requests: list[accounts_pb2.ListKeyDigestsRequest] = []

    async def ListKeyDigests(  # noqa: N802 - the RPC's name
        self, request: accounts_pb2.ListKeyDigestsRequest, **_: Any
    ) -> accounts_pb2.ListKeyDigestsResponse:
        self.requests.append(request)
        return self.reply


async def test_a_reading_with_more_keys_than_listed_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    digests = [bytes([n]) * 32 for n in range(3)]
    accounts = Accounts(accounts_pb2.ListKeyDigestsResponse(digests=digests, has_more=True))
    read = key_digests_on_record(accounts)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="remit.rest.key_lookup"):
        assert await read() == frozenset(digests)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "only the newest 3 are on record" in warnings[0].getMessage()
    assert accounts.requests[0].limit == MAX_LISTED_KEY_DIGESTS

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="remit.rest.key_lookup"):
        await read()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


async def test_a_complete_reading_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    digests = [b"\x01" * 32]
    read = key_digests_on_record(
        Accounts(accounts_pb2.ListKeyDigestsResponse(digests=digests))  # type: ignore[arg-type]
    )
    with caplog.at_level(logging.WARNING, logger="remit.rest.key_lookup"):
        assert await read() == frozenset(digests)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
