"""A migration that stops on purpose: it found data it must not change without an operator's
decision (duplicate rows to choose between, settings a merchant agreed to, a downgrade that
would undo a payout's arithmetic). Its message names what it found and what to do; nothing of
that migration was applied (each runs in a transaction of its own), and running it again
unchanged stops the same way. `remit migrate` and `remit serve` say it in one line and exit 2.
"""


class MigrationStoppedError(RuntimeError):
    """Raised by a migration that needs an operator's decision before it can go on; a
    RuntimeError, as those migrations raised before they had a class of their own."""
