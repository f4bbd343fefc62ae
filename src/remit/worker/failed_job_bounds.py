"""How many failed jobs `remit jobs failed` lists: kept apart from `remit.worker.failed_jobs`
so that building the command line (which every remit process does at start) imports no
database code."""

from typing import Final

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 1000
