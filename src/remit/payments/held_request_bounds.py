"""The bounds of `remit held-requests`, apart from the command and the core's code, so building
the command line (which every remit process does at start) imports neither gRPC nor SQLAlchemy."""

from datetime import timedelta
from typing import Final

DEFAULT_LIST_LIMIT: Final = 50
MAX_LIST_LIMIT: Final = 100
# Unfinished keys are kept however old; a bound keeps the arithmetic on times in range.
MAX_AGE: Final = timedelta(days=3650)
DEFAULT_OLDER_THAN_MINUTES: Final = 15
MAX_OLDER_THAN_MINUTES: Final = int(MAX_AGE.total_seconds()) // 60
