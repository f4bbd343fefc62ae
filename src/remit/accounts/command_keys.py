"""The idempotency key of a command that makes an account or an API key (`remit accounts
create`, `remit accounts keys create|roll`), so that running it again after it failed without
an answer makes nothing twice.

Each run sends one: `--idempotency-key KEY` when given, else a fresh random one. A run that
fails not knowing whether the account or key was made (the core's answer lost, the database
gone while it committed) exits 75, naming its key: run again with `--idempotency-key KEY`, and
the second run is answered with what the first made, if it made anything. Only the ids of what
it made: a key's plaintext is shown once and never stored, so a key made by a run whose answer
was lost is one nobody holds, to revoke (the command says how).
"""

from remit.command_exits import CommandTemporaryFailureError
from remit.core.ids import random_token

# Keys a command makes up for itself start so, to tell them from a caller's own in the table.
_COMMAND_KEY_PREFIX = "remit-command-"
IDEMPOTENCY_KEY_HELP = (
    "idempotency key of the request, to run the command again safely after it failed without "
    "an answer (exit 75 names the key it used); default: a fresh one"
)


def command_idempotency_key(given: str | None) -> str:
    return given if given else f"{_COMMAND_KEY_PREFIX}{random_token()}"


def made_perhaps(
    failure: str, key: str, what: str, other_flags: tuple[str, ...] = ()
) -> CommandTemporaryFailureError:
    """The failure of a run that may have made `what` all the same, naming its key and the
    `other_flags` the run again needs to do the same (`--key` of the key a roll replaces,
    which the key it may have made would otherwise make ambiguous)."""
    flags = " ".join((*other_flags, f"--idempotency-key {key}"))
    return CommandTemporaryFailureError(
        f"{failure}; {what} may have been made all the same: run the command again with "
        f"{flags}, so that it is not made twice"
    )
