"""A file written through AtomicFile appears whole or not at all."""

import os
import stat
from pathlib import Path

import pytest

from remit.core.atomic_file import AtomicFile


def test_the_file_appears_only_when_committed(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    path.write_text("yesterday's report\n")
    target = AtomicFile.create(path)
    target.handle.write("today's report\n")
    target.handle.flush()
    assert path.read_text() == "yesterday's report\n"
    target.commit()
    assert path.read_text() == "today's report\n"
    assert os.listdir(tmp_path) == ["report.csv"]


def test_a_discarded_file_leaves_the_path_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    path.write_text("yesterday's report\n")
    target = AtomicFile.create(path)
    target.handle.write("half a rep")
    target.discard()
    assert path.read_text() == "yesterday's report\n"
    assert os.listdir(tmp_path) == ["report.csv"]


def test_the_file_gets_the_permissions_a_direct_write_would(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        target = AtomicFile.create(tmp_path / "report.csv")
    finally:
        os.umask(previous)
    target.commit()
    assert stat.S_IMODE((tmp_path / "report.csv").stat().st_mode) == 0o640


def test_a_path_that_cannot_be_written_fails_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        AtomicFile.create(tmp_path / "missing" / "report.csv")
    with pytest.raises(IsADirectoryError):
        AtomicFile.create(tmp_path)
    assert os.listdir(tmp_path) == []
