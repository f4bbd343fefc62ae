"""Who is calling: each kind of remit process shows a credential of its own role.

Every role's credential is derived from the platform token (`internal_auth`) as an HMAC of the
role's name, so nothing new has to be made or handed out: a process that holds the platform
token can work out any role's credential, and the servers, which hold it, check a credential
by working it out again. `remit serve` gives the processes that only call (the REST facade and
the worker) their own credential and not the platform token, so that a facade taken over
cannot act as the CLI (`role_permissions` says what each role may call).

A credential reads `ROLE.MAC`: the role is in plain sight for logs and refusals; the MAC is
what proves it. The platform token itself stands for the admin role, whose credential it can
derive anyway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Final

API: Final = "api"
CORE: Final = "core"
WORKER: Final = "worker"
VAULT: Final = "vault"
ACQUIRER: Final = "acquirer"
# The CLI's commands, and anyone else who holds the platform token.
ADMIN: Final = "admin"
ROLES: Final = (API, CORE, WORKER, VAULT, ACQUIRER, ADMIN)

# Processes that call others but answer no gRPC calls themselves: they need no platform token
# to check callers with, so `remit serve` gives them only their own credential.
CALLER_ONLY_ROLES: Final = frozenset({API, WORKER})

_SEPARATOR: Final = "."
# Keeps role credentials apart from any other MAC ever made under the platform token.
_CONTEXT: Final = b"remit internal role\x00"


def role_credential(platform_token: str, role: str) -> str:
    """The credential a process of `role` shows on its gRPC calls."""
    if role not in ROLES:
        raise ValueError(f"unknown internal role {role!r}; the roles are {', '.join(ROLES)}")
    mac = hmac.new(platform_token.encode(), _CONTEXT + role.encode(), hashlib.sha256).digest()
    return role + _SEPARATOR + base64.urlsafe_b64encode(mac).decode().rstrip("=")


class RoleVerifier:
    """Tells which role a presented credential proves, for a server that holds the platform
    token."""

    def __init__(self, platform_token: str) -> None:
        self._platform_token = platform_token.encode()
        self._credentials = {role: role_credential(platform_token, role).encode() for role in ROLES}

    def role_of(self, presented: str | None) -> str | None:
        """The role `presented` proves; None when it proves none (missing, forged, unknown)."""
        if presented is None:
            return None
        shown = presented.encode()
        if hmac.compare_digest(shown, self._platform_token):
            return ADMIN
        role = presented.partition(_SEPARATOR)[0]
        expected = self._credentials.get(role)
        if expected is not None and hmac.compare_digest(shown, expected):
            return role
        return None
