"""X-Forwarded-For is believed from a trusted proxy only; from any other peer it is ignored and
that is logged, once per peer, naming the peer and the setting to change."""

import logging
from typing import Any

import pytest

from remit.rest import forwarded
from remit.rest.forwarded import ForwardedFor

pytestmark = pytest.mark.anyio

PROXY = "10.1.2.3"


class App:
    """Records the client address each request reaches the application with."""

    def __init__(self) -> None:
        self.clients: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.clients.append(scope["client"][0])


async def _request(app: ForwardedFor, peer: str, forwarded_for: str | None) -> None:
    headers = [(b"host", b"api.example")]
    if forwarded_for is not None:
        headers.append((b"x-forwarded-for", forwarded_for.encode()))
    scope = {"type": "http", "client": (peer, 40000), "headers": headers}

    async def receive() -> Any:
        raise AssertionError("not read")

    async def send(message: Any) -> None:
        raise AssertionError("not sent")

    await app(scope, receive, send)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == forwarded.__name__]


async def test_a_trusted_proxys_client_is_believed_and_nothing_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inner = App()
    app = ForwardedFor(inner, "10.0.0.0/8")
    with caplog.at_level(logging.WARNING):
        await _request(app, PROXY, "198.51.100.1, 203.0.113.9")
    assert inner.clients == ["203.0.113.9"]  # the entry the proxy wrote, not the client's own
    assert _warnings(caplog) == []


async def test_forwarded_for_from_an_untrusted_peer_is_ignored_and_logged_once_per_peer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inner = App()
    app = ForwardedFor(inner, "127.0.0.1,::1")
    with caplog.at_level(logging.WARNING):
        for n in range(3):
            await _request(app, PROXY, f"203.0.113.{n}")
        await _request(app, "192.0.2.8", None)  # no header: nothing to say
    assert inner.clients == [PROXY, PROXY, PROXY, "192.0.2.8"]
    [warning] = _warnings(caplog)
    assert f"X-Forwarded-For from {PROXY} is ignored" in warning
    assert "REMIT_FORWARDED_ALLOW_IPS" in warning
    assert "203.0.113" not in warning  # what the header says is not the peer's to log

    with caplog.at_level(logging.WARNING):
        await _request(app, "192.0.2.8", "203.0.113.4")
    assert len(_warnings(caplog)) == 2  # another peer is named too


async def test_only_a_few_peers_are_ever_named(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(forwarded, "MAX_PEERS_LOGGED", 2)
    app = ForwardedFor(App(), "127.0.0.1")
    with caplog.at_level(logging.WARNING):
        for n in range(5):
            await _request(app, f"192.0.2.{n}", "203.0.113.4")
    assert len(_warnings(caplog)) == 2
