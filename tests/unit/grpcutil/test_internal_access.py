"""A platform config without an internal token gives no access to the internal services unless
internal authentication is explicitly off, for development."""

import logging
from pathlib import Path

import pytest

from remit.config import ConfigError, from_env
from remit.grpcutil.internal_auth import InternalAccess
from remit.grpcutil.internal_roles import CORE, role_credential


def test_without_a_token_the_platform_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        InternalAccess.of(from_env({"REMIT_DATA_DIR": str(tmp_path)}))
    message = str(refused.value)
    assert "no internal token is configured" in message
    assert "REMIT_INTERNAL_TOKEN" in message
    assert "REMIT_INTERNAL_AUTH=off" in message


def test_with_internal_authentication_off_it_runs_without_a_token_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = from_env({"REMIT_DATA_DIR": str(tmp_path), "REMIT_INTERNAL_AUTH": "off"})
    with caplog.at_level(logging.WARNING):
        access = InternalAccess.of(config)
    assert access.token is None
    assert any("INTERNAL AUTHENTICATION IS OFF" in r.getMessage() for r in caplog.records)
    # The setting reaches the processes `remit serve` starts.
    assert config.to_env()["REMIT_INTERNAL_AUTH"] == "off"


def test_a_configured_token_is_used_and_nothing_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = from_env({"REMIT_DATA_DIR": str(tmp_path), "REMIT_INTERNAL_TOKEN": "t0ken"})
    with caplog.at_level(logging.WARNING):
        # A process shows its role's credential, derived from the token.
        assert InternalAccess.of(config.acting_as(CORE)).token == role_credential("t0ken", CORE)
    assert caplog.records == []
