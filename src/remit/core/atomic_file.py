"""A file that appears whole or not at all: written beside its final path, synced, renamed.

A report cut short (a full disk, a killed job) must not be taken for a finished one. It is
written under a temporary name in the same directory (a rename is atomic only within one file
system), flushed to disk, and only then renamed over the final path; the directory is synced
so that the rename survives a crash too. Until then the final path keeps what it held before.
"""

import os
import secrets
from pathlib import Path
from typing import TextIO


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
        temporary = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
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
