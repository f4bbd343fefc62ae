"""An embedded PostgreSQL that does not start is one `EmbeddedDatabaseError`: one line saying
why, taken from what initdb, pg_ctl or the server wrote (which pgserver logs as many lines of
its own, kept out of remit's log), and whether starting it again later may succeed."""

import logging
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest
from pgserver import postgres_server

from remit.storage.embedded import EmbeddedDatabaseError, start_cluster

_PGSERVER_SAYS = (
    "Failed postgres command ['initdb', '-D', '/x'] with kwargs: `{}`:\nerror:\nCommand "
    "returned non-zero exit status 1.\nstdout:\n\n---\nstderr:\ninitdb: error: could not "
    'create directory "/x/pg_wal": No space left on device\n---\n'
)


def test_a_server_that_refuses_to_start_says_why_in_one_line_and_is_not_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def initdb_fails(*_args: object, **_kwargs: object) -> NoReturn:
        logging.getLogger("pgserver").error(_PGSERVER_SAYS)
        raise subprocess.CalledProcessError(1, ["initdb"])

    monkeypatch.setattr(postgres_server, "get_server", initdb_fails)
    with caplog.at_level(logging.INFO), pytest.raises(EmbeddedDatabaseError) as raised:
        start_cluster(tmp_path / "pg-core")
    assert str(raised.value) == (
        f"the embedded PostgreSQL in {tmp_path / 'pg-core'} did not start: could not create "
        f'directory "/x/pg_wal": No space left on device (its log: {tmp_path}/pg-core/log)'
    )
    assert not raised.value.temporary
    assert caplog.records == []


def test_a_server_still_starting_when_pgserver_stops_waiting_may_start_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def still_recovering(*_args: object, **_kwargs: object) -> NoReturn:
        raise subprocess.TimeoutExpired(["pg_ctl", "start"], 10)

    monkeypatch.setattr(postgres_server, "get_server", still_recovering)
    with pytest.raises(EmbeddedDatabaseError) as raised:
        start_cluster(tmp_path / "pg-core")
    assert "did not start: it was not ready within 10s" in str(raised.value)
    assert raised.value.temporary


def test_a_data_directory_that_cannot_be_made_is_said_as_the_system_says_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(EmbeddedDatabaseError) as raised:
        start_cluster(tmp_path / "file" / "pg-core")
    assert f"did not start: Not a directory: {tmp_path}/file/pg-core" in str(raised.value)
    assert not raised.value.temporary
