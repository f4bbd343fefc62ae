"""Who runs an admin command, as the audit records it writes name them (an API key's events,
`remit.accounts.key_events`; a vault key version declared lost, `remit.vault.admin`): the login
name of the shell's user and the host it runs on. Told by the command, recorded as told: the
role a service checks is the one the credential proves."""

import getpass
import os
import pwd
import socket
from typing import Final

# The longest operator recorded (the accounts RPCs declare the same `max_length`).
MAX_OPERATOR_LENGTH: Final = 200


def _user() -> str:
    """The name of the user the command runs as: the passwd entry of its uid, not the LOGNAME or
    USER the environment claims (anyone can set those, to anything). The environment only when
    the uid has no entry (a container's user), and `unknown` when it has neither."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        pass
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def shell_operator() -> str:
    """`USER@HOST`, each `unknown` when there is none to be had."""
    user = _user()
    host = socket.gethostname() or "unknown"
    return f"{user}@{host}"[:MAX_OPERATOR_LENGTH]
