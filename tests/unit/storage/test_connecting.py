"""Which libpq keywords a connection is given, beside what the operator's URL, service file and
environment set."""

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from remit.storage.connecting import (
    KEEPALIVE_KEYS,
    LONG_KEEPALIVES,
    SERVICE_KEEPALIVES,
    libpq_arguments,
)
from remit.storage.migration_env import migration_arguments

URL = "postgresql://remit@db.example:5432/remit"


def _arguments(url: str = URL, env: dict[str, str] | None = None) -> dict[str, object]:
    return libpq_arguments(url, connect_timeout_s=5, env={} if env is None else env)


def test_none_set_gives_all_with_the_user_timeout_the_keepalives_wait() -> None:
    assert _arguments() == {
        "connect_timeout": 5,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": 25_000,
    }


def test_any_keepalive_key_the_url_sets_leaves_all_of_them_out() -> None:
    for query in (
        "keepalives=0",
        "keepalives_idle=60",
        "keepalives_interval=2",
        "keepalives_count=9",
        "tcp_user_timeout=0",
    ):
        arguments = _arguments(f"{URL}?{query}")
        assert not KEEPALIVE_KEYS & arguments.keys(), query
        assert arguments["connect_timeout"] == 5


def test_the_url_s_connect_timeout_leaves_ours_out_and_keeps_the_keepalives() -> None:
    arguments = _arguments(f"{URL}?connect_timeout=20")
    assert "connect_timeout" not in arguments
    assert arguments["tcp_user_timeout"] == 25_000


def test_pgconnect_timeout_is_not_overridden() -> None:
    arguments = _arguments(env={"PGCONNECT_TIMEOUT": "30"})
    assert "connect_timeout" not in arguments
    assert arguments["keepalives"] == 1


def test_a_service_s_values_are_not_overridden(tmp_path: Path) -> None:
    services = tmp_path / "services.conf"
    services.write_text(
        "# services\n[other]\nkeepalives_idle=1\n\n"
        "[remit]\nhost=db.example\n connect_timeout = 12\nkeepalives_idle=120\n"
        "[plain]\nhost=db.example\n"
    )
    env = {"PGSERVICEFILE": str(services)}
    assert _arguments(f"{URL}?service=remit", env) == {}
    # Named by the environment instead of the URL.
    assert _arguments(env={**env, "PGSERVICE": "remit"}) == {}
    # A service that sets none of them is given all.
    assert _arguments(f"{URL}?service=plain", env) == _arguments()


def test_the_system_service_file_is_read_when_the_user_s_lacks_the_service(
    tmp_path: Path,
) -> None:
    (tmp_path / "pg_service.conf").write_text("[remit]\nkeepalives=0\n")
    env = {"PGSERVICEFILE": str(tmp_path / "none.conf"), "PGSYSCONFDIR": str(tmp_path)}
    assert _arguments(f"{URL}?service=remit", env) == {"connect_timeout": 5}


def test_the_long_window_is_five_minutes_and_agrees_with_its_probes() -> None:
    arguments = libpq_arguments(URL, connect_timeout_s=5, keepalives=LONG_KEEPALIVES, env={})
    idle, interval, count = (
        arguments["keepalives_idle"],
        arguments["keepalives_interval"],
        arguments["keepalives_count"],
    )
    assert arguments["tcp_user_timeout"] == (idle + interval * count) * 1000 == 300_000
    assert arguments["connect_timeout"] == 5
    assert SERVICE_KEEPALIVES.user_timeout_ms == 25_000


def test_migrations_connect_with_the_long_window_and_the_usual_connect_timeout() -> None:
    arguments = migration_arguments(URL)
    assert arguments["tcp_user_timeout"] == LONG_KEEPALIVES.user_timeout_ms == 300_000
    assert arguments["keepalives_idle"] == LONG_KEEPALIVES.idle_s
    assert arguments["connect_timeout"] == libpq_arguments(URL)["connect_timeout"]


def test_the_ledger_commands_engine_has_the_long_window(monkeypatch: pytest.MonkeyPatch) -> None:
    import remit.databases
    import remit.storage.engine
    import remit.storage.reachability
    from remit.ledger import cli

    made: dict[str, object] = {}

    class MadeError(Exception):
        pass

    def make_engine(url: str, **kwargs: object) -> None:
        made.update(kwargs)
        raise MadeError

    resolved = SimpleNamespace(config=None, stop_embedded=lambda: None)
    monkeypatch.setattr(remit.databases, "resolve_databases", lambda *_, **__: resolved)
    monkeypatch.setattr(remit.databases, "require_at_head", lambda *_: None)
    monkeypatch.setattr(
        remit.storage.reachability, "core_database", lambda _: SimpleNamespace(url=URL)
    )
    monkeypatch.setattr(remit.storage.engine, "make_engine", make_engine)
    with pytest.raises(MadeError):
        cli._with_service(cast(Any, None), cast(Any, None), command="ledger verify")
    assert made["keepalives"] == LONG_KEEPALIVES
