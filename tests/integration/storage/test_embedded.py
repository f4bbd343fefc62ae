"""The embedded PostgreSQL that `remit serve` starts: a cluster stopped at exit starts again."""

import stat
from pathlib import Path

import psutil
import pytest

from remit.storage.embedded import start_cluster


def test_a_stopped_cluster_starts_again_on_its_data_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "pg"
    cluster = start_cluster(data_dir, on_last_exit="stop")
    cluster.execute_admin("CREATE TABLE kept (n int); INSERT INTO kept VALUES (1), (2);")
    cluster.stop()
    mode = stat.S_IMODE(data_dir.stat().st_mode)
    assert mode & 0o027 == 0, f"PostgreSQL needs 0700 or 0750, the directory is {mode:o}"

    # As `make run` a second time: the same directory, PostgreSQL started again.
    again = start_cluster(data_dir, on_last_exit="delete")
    try:
        assert "2" in again.execute_admin("SELECT count(*) FROM kept;")
    finally:
        again.stop()


def test_a_data_directory_left_readable_by_others_is_narrowed_and_starts(tmp_path: Path) -> None:
    data_dir = tmp_path / "pg"
    start_cluster(data_dir, on_last_exit="stop").stop()
    data_dir.chmod(0o755)  # what earlier versions left behind
    cluster = start_cluster(data_dir, on_last_exit="delete")
    try:
        assert "1" in cluster.execute_admin("SELECT 1;")
    finally:
        cluster.stop()


def test_a_start_interrupted_once_the_server_runs_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second stop request of `remit serve` lands as a KeyboardInterrupt wherever pgserver
    is: here just after pg_ctl started the server, before pgserver handed it out (it would
    then not stop it at exit)."""
    from pgserver import postgres_server

    real_get_server = postgres_server.get_server
    started: list[int] = []

    def interrupted(pgdata: Path, cleanup_mode: str | None = "stop") -> object:
        server = real_get_server(pgdata, cleanup_mode=None)
        pid = server.get_pid()
        assert pid is not None
        started.append(pid)
        raise KeyboardInterrupt

    monkeypatch.setattr(postgres_server, "get_server", interrupted)
    data_dir = tmp_path / "pg"
    with pytest.raises(KeyboardInterrupt):
        start_cluster(data_dir)
    [pid] = started
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not (data_dir / "postmaster.pid").exists()
