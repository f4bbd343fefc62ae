"""How many set-aside releases `remit balance-release-failures list` shows: kept apart from
`remit.ledger.release_failures_command` so that building the command line (which every remit
process does at start) imports no database code."""

from typing import Final

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 1000
