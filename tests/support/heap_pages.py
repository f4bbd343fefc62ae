"""Reading a PostgreSQL heap file's pages from disk, for tests that ask what a table's file
still holds (the embedded PostgreSQL has no pageinspect). The layout is PostgreSQL's
bufpage.h / itemid.h on a little-endian machine with the default 8 KiB pages."""

import struct
from collections.abc import Iterator
from typing import Final

PAGE_SIZE: Final = 8192
_PAGE_HEADER_SIZE: Final = 24
_PD_LOWER_AT: Final = 12
_LP_NORMAL: Final = 1


def stored_tuples(heap_file: bytes) -> Iterator[bytes]:
    """The bytes of every tuple a line pointer of the file still points at (LP_NORMAL: live,
    or dead and not yet pruned); not the pages' free space."""
    for start in range(0, len(heap_file), PAGE_SIZE):
        page = heap_file[start : start + PAGE_SIZE]
        (lower,) = struct.unpack_from("<H", page, _PD_LOWER_AT)
        for at in range(_PAGE_HEADER_SIZE, lower, 4):
            (item,) = struct.unpack_from("<I", page, at)
            offset, flags, length = item & 0x7FFF, (item >> 15) & 0x3, item >> 17
            if flags == _LP_NORMAL:
                yield page[offset : offset + length]
