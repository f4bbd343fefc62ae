"""X-Forwarded-For, believed from the trusted proxies only (`remit.config.forwarded_allow_ips`),
and a warning when it comes from a peer that is not one of them.

The client address counts failed authentications (`remit.rest.rate_limits`). A proxy that is
not trusted has its X-Forwarded-For ignored, so every client behind it is counted as the proxy:
one of them trying keys holds back the others' look-ups. Nothing in the answers shows that, so
the first X-Forwarded-For from each such peer is logged, naming the peer and the setting that
would trust it; a few peers only, so that clients who send the header themselves cannot fill
the log.

uvicorn's own middleware does the believing; this one wraps it, since only outside it is the
peer's own address still known.
"""

import logging
from typing import Any, cast

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

log = logging.getLogger(__name__)

# Enough to name a misconfigured load balancer even after a few clients sent the header
# themselves; past it, nothing more is logged.
MAX_PEERS_LOGGED = 8


class ForwardedFor:
    def __init__(self, app: ASGIApp, trusted_proxies: str) -> None:
        # Starlette's and uvicorn's ASGI types describe the same dicts and callables.
        self._believing = ProxyHeadersMiddleware(cast(Any, app), trusted_hosts=trusted_proxies)
        self._trusted = self._believing.trusted_hosts
        self._peers_logged: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and len(self._peers_logged) < MAX_PEERS_LOGGED:
            self._note_if_ignored(scope)
        await self._believing(cast(Any, scope), cast(Any, receive), cast(Any, send))

    def _note_if_ignored(self, scope: Scope) -> None:
        client = scope.get("client")
        peer = client[0] if client else None
        if peer in self._trusted or peer in self._peers_logged:
            return
        if not any(name == b"x-forwarded-for" for name, _ in scope["headers"]):
            return
        shown = peer or "an unknown peer (a Unix socket)"
        self._peers_logged.add(peer or "")
        log.warning(
            "X-Forwarded-For from %s is ignored: REMIT_FORWARDED_ALLOW_IPS does not list it, "
            "so every client behind it counts as %s against the per-client limit; if it is "
            "your proxy, add it (or its network) to REMIT_FORWARDED_ALLOW_IPS "
            "(logged once per peer, for the first %d peers)",
            shown,
            shown,
            MAX_PEERS_LOGGED,
        )
