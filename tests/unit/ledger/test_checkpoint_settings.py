"""The ledger's checkpoint key comes from the environment or a private key file, is long enough
to be no guess, and reaches no process `remit serve` starts but the worker."""

from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.config import (
    ConfigError,
    environment_for,
    ledger_checkpoint_interval_s,
    ledger_checkpoint_key,
    ledger_checkpoint_previous_keys,
)
from remit.core.clock import FixedClock
from remit.worker.registry import ledger_checkpoint_tasks

LONG_ENOUGH = "0123456789abcdef0123456789abcdef"


def test_the_key_comes_from_the_variable_before_the_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("f" * 40 + "\n")
    key_file.chmod(0o600)
    assert ledger_checkpoint_key({}) is None
    from_file = ledger_checkpoint_key({"REMIT_LEDGER_CHECKPOINT_KEY_FILE": str(key_file)})
    assert from_file is not None
    assert from_file.reveal() == b"f" * 40
    both = {
        "REMIT_LEDGER_CHECKPOINT_KEY": LONG_ENOUGH,
        "REMIT_LEDGER_CHECKPOINT_KEY_FILE": str(key_file),
    }
    inline = ledger_checkpoint_key(both)
    assert inline is not None
    assert inline.reveal() == LONG_ENOUGH.encode()


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 32 characters"):
        ledger_checkpoint_key({"REMIT_LEDGER_CHECKPOINT_KEY": LONG_ENOUGH[:-1]})


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(LONG_ENOUGH)
    key_file.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        ledger_checkpoint_key({"REMIT_LEDGER_CHECKPOINT_KEY_FILE": str(key_file)})


def test_a_missing_key_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        ledger_checkpoint_key({"REMIT_LEDGER_CHECKPOINT_KEY_FILE": str(tmp_path / "none")})


RETIRED = "@2026-12-07T08:00:00Z"
RETIRED_AT = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def test_earlier_keys_come_from_the_variable_and_a_private_file_of_one_key_a_line(
    tmp_path: Path,
) -> None:
    assert ledger_checkpoint_previous_keys({}) == ()
    key_file = tmp_path / "previous"
    key_file.write_text(
        "b" * 32
        + "@2026-12-01T00:00:00+00:00\n\n"
        + "c" * 20
        + " with a space and @ more"
        + RETIRED
    )
    key_file.chmod(0o600)
    keys = ledger_checkpoint_previous_keys(
        {
            "REMIT_LEDGER_CHECKPOINT_PREVIOUS_KEYS": " "
            + "a" * 32
            + RETIRED
            + "\n"
            + "d" * 40
            + RETIRED,
            "REMIT_LEDGER_CHECKPOINT_PREVIOUS_KEYS_FILE": str(key_file),
        }
    )
    assert [(key.reveal(), at) for key, at in keys] == [
        (b"a" * 32, RETIRED_AT),
        (b"d" * 40, RETIRED_AT),
        (b"b" * 32, datetime(2026, 12, 1, tzinfo=UTC)),
        (b"c" * 20 + b" with a space and @ more", RETIRED_AT),
    ]
    key_file.chmod(0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        ledger_checkpoint_previous_keys(
            {"REMIT_LEDGER_CHECKPOINT_PREVIOUS_KEYS_FILE": str(key_file)}
        )
    with pytest.raises(ConfigError, match="at least 32 characters"):
        ledger_checkpoint_previous_keys(
            {"REMIT_LEDGER_CHECKPOINT_PREVIOUS_KEYS": "short" + RETIRED}
        )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("a" * 32, "without its retirement time"),
        ("a" * 32 + "@yesterday", "malformed"),
        ("a" * 32 + "@2026-12-07T08:00:00", "not in UTC"),
        ("a" * 32 + "@2026-12-07T09:00:00+01:00", "not in UTC"),
    ],
    ids=["no time", "malformed", "no zone", "not utc"],
)
def test_an_earlier_key_without_a_utc_retirement_time_is_refused(value: str, problem: str) -> None:
    """Without it, whoever holds a leaked earlier key could write lines dated after the change
    that pass: the time is required, and the message shows no key."""
    with pytest.raises(ConfigError, match=f"KEY@RETIRED_AT.*{problem}") as refused:
        ledger_checkpoint_previous_keys({"REMIT_LEDGER_CHECKPOINT_PREVIOUS_KEYS": value})
    assert "a" * 32 not in str(refused.value)


def test_the_interval_is_bounded() -> None:
    assert ledger_checkpoint_interval_s({}) == 3600.0
    with pytest.raises(ConfigError, match="between 10 and 86400"):
        ledger_checkpoint_interval_s({"REMIT_LEDGER_CHECKPOINT_INTERVAL_S": "1"})


PARENT_ENV = {
    "REMIT_LEDGER_CHECKPOINT_KEY": LONG_ENOUGH,
    "REMIT_LEDGER_CHECKPOINT_KEY_FILE": "/etc/remit/checkpoint-key",
    "REMIT_LEDGER_CHECKPOINT_FILE": "/var/lib/remit/checkpoints",
}


@pytest.mark.parametrize("role", ["api", "core", "vault", "acquirer"])
def test_only_the_worker_gets_the_checkpoint_key(role: str) -> None:
    env = environment_for(role, PARENT_ENV)
    assert "REMIT_LEDGER_CHECKPOINT_KEY" not in env
    assert "REMIT_LEDGER_CHECKPOINT_KEY_FILE" not in env
    assert environment_for("worker", PARENT_ENV) == PARENT_ENV


@pytest.mark.parametrize("role", ["api", "core", "vault", "acquirer", "worker"])
def test_no_process_serve_starts_gets_the_earlier_keys(role: str) -> None:
    """Only `remit ledger verify` checks lines of earlier keys; the worker writes with the
    current one."""
    parent = PARENT_ENV | {
        "REMIT_LEDGER_CHECKPOINT_PREVIOUS_KEYS": "e" * 32,
        "REMIT_LEDGER_CHECKPOINT_PREVIOUS_KEYS_FILE": "/etc/remit/previous-checkpoint-keys",
    }
    env = environment_for(role, parent)
    assert "REMIT_LEDGER_CHECKPOINT_PREVIOUS_KEYS" not in env
    assert "REMIT_LEDGER_CHECKPOINT_PREVIOUS_KEYS_FILE" not in env


def test_the_worker_checkpoints_when_a_file_is_set_and_refuses_to_without_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    engine = cast(AsyncEngine, object())
    clock = FixedClock(datetime(2026, 12, 7, tzinfo=UTC))
    for name in PARENT_ENV:
        monkeypatch.delenv(name, raising=False)
    assert ledger_checkpoint_tasks(engine, clock) == []
    monkeypatch.setenv("REMIT_LEDGER_CHECKPOINT_FILE", str(tmp_path / "checkpoints"))
    with pytest.raises(ConfigError, match="checkpoints need the key"):
        ledger_checkpoint_tasks(engine, clock)
    monkeypatch.setenv("REMIT_LEDGER_CHECKPOINT_KEY", LONG_ENOUGH)
    monkeypatch.setenv("REMIT_LEDGER_CHECKPOINT_INTERVAL_S", "60")
    [task] = ledger_checkpoint_tasks(engine, clock)
    assert (task.name, task.interval_s) == ("ledger-checkpoints", 60.0)
