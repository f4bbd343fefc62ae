"""Who runs a key command, as its audit record names them (`remit.accounts.key_events`): the
login name of the shell's user and the host it runs on. Told by the command, recorded as told:
the role the core checks is the one the credential proves (admin for every command)."""

import getpass
import socket

from remit.accounts.key_events import MAX_OPERATOR_LENGTH


def shell_operator() -> str:
    """`USER@HOST`, each `unknown` when there is none to be had."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        # No login name (a container's user with no passwd entry).
        user = "unknown"
    host = socket.gethostname() or "unknown"
    return f"{user}@{host}"[:MAX_OPERATOR_LENGTH]
