"""A file that appears whole or not at all: written beside its final path, synced, renamed.

A report cut short (a full disk, a killed job) must not be taken for a finished one. It is
written under a temporary name in the same directory (a rename is atomic only within one file
system), flushed to disk, and only then renamed over the final path; the directory is synced
so that the rename survives a crash too. Until then the final path keeps what it held before.

A writer killed before the rename leaves its temporary file behind, under a random name of its
own (`.NAME.<8 hex digits>.tmp`). `stale_temporaries` finds those a
path's writers left, for a caller that can tell none of them is still writing.
"""

import os
import re
import secrets
from pathlib import Path
from typing import Final, TextIO

_TEMPORARY_SUFFIX_DIGITS: Final = 8


def _temporary_name(path: Path) -> str:
    return f".{path.name}.{secrets.token_hex(_TEMPORARY_SUFFIX_DIGITS // 2)}.tmp"


def stale_temporaries(path: Path) -> list[Path]:
    """The temporary files writers of `path` left (killed before `commit` or `discard`):
    regular files beside it named as `AtomicFile.create` names them for `path`, and nothing
    else, not even the temporary files of another path in the same directory. Only the caller
    knows whether one of them is being written right now (it holds the writers' lock)."""
    pattern = re.compile(
        rf"\.{re.escape(path.name)}\.[0-9a-f]{{{_TEMPORARY_SUFFIX_DIGITS}}}\.tmp", re.ASCII
    )
    with os.scandir(path.parent) as entries:
        return sorted(
            Path(entry.path)
            for entry in entries
            if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)
        )


class AtomicFile:
    def __init__(self, path: Path, temporary: Path, handle: TextIO) -> None:
        self.path = path
        self.handle = handle
        self._temporary = temporary

    @classmethod
    def create(cls, path: Path, mode: int = 0o666) -> "AtomicFile":
        """Start writing `path`, with permissions `mode` less the umask (by default those the
        file would have if written directly; 0o600 for a secret, which is never readable by
        others, not even while it is written). Fails at once (OSError) where the file could
        not be written in the end: a missing or read-only directory, a path that is a
        directory."""
        if path.is_dir():
            raise IsADirectoryError(21, "Is a directory", str(path))
        temporary = path.parent / _temporary_name(path)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        return cls(path, temporary, os.fdopen(descriptor, "w", encoding="utf-8", newline=""))

    def commit(self) -> None:
        """Make the file appear at its path, with everything written."""
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self._temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def discard(self) -> None:
        """Drop what was written; the path keeps what it held."""
        try:
            self.handle.close()
        finally:
            self._temporary.unlink(missing_ok=True)
