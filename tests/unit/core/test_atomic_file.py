"""A file written through AtomicFile appears whole or not at all."""

import os
import stat
from pathlib import Path

import pytest

from remit.core.atomic_file import AtomicFile, stale_temporaries


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


def test_the_temporary_files_a_path_s_killed_writers_left_are_found_and_nothing_else(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keys.json"
    path.write_text("{}")
    left = tmp_path / ".keys.json.0123abcd.tmp"
    left.write_text("half a key file")
    # Not the temporary files of `path`: another path's (even one whose name starts with
    # path's), names of another shape, a directory.
    others = [
        ".keys.json.prev.89abcdef.tmp",
        ".other.json.0123abcd.tmp",
        "keys.json.0123abcd.tmp",
        ".keys.json.0123abcd.tmp.bak",
        ".keys.json.0123ABCD.tmp",
        ".keys.json.0123abc.tmp",
        ".keys.json.zzzzzzzz.tmp",
    ]
    for name in others:
        (tmp_path / name).write_text("not path's")
    (tmp_path / ".keys.json.fedcba98.tmp").mkdir()
    assert stale_temporaries(path) == [left]
    assert stale_temporaries(tmp_path / "keys.json.prev") == [
        tmp_path / ".keys.json.prev.89abcdef.tmp"
    ]


def test_a_writer_killed_before_its_commit_leaves_a_temporary_file_found_as_stale(
    tmp_path: Path,
) -> None:
    path = tmp_path / "report.csv"
    target = AtomicFile.create(path)
    target.handle.write("half a rep")
    target.handle.flush()
    # Killed here: neither committed nor discarded.
    left = os.listdir(tmp_path)
    assert len(left) == 1
    assert [found.name for found in stale_temporaries(path)] == left
    target.discard()
    assert stale_temporaries(path) == []
