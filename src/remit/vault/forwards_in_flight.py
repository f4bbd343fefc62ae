"""How long a forward the vault sent may still commit an authorization at the acquirer
(`remit.grpcutil.forward_in_flight` says why the vault asks).

A forward is audited, committed, before the card leaves the vault (`VaultService.forward`), so
its audit event's time T0 comes before the send, and after the vault saw that its caller's
deadline left the time a send needs. The core gives its call to the vault the network's timeout
(REMIT_NETWORK_TIMEOUT_S) and `VAULT_MARGIN_S`; the vault's call to the acquirer is bounded by
the network's timeout and ends `ANSWER_MARGIN_S` before the core's deadline, so it ends at most
T0 + the timeout + (`VAULT_MARGIN_S` - `ANSWER_MARGIN_S`). An authorization the acquirer
received by then runs on whether or not the call that brought it is still waiting
(`remit.acquirer.settlement_clock`): an off-session one that cites the setup of its card reads
the setup in a statement of its own, then records the authorization in another
(`AcquirerService.authorize`), each after a wait for a connection of at most the pool's wait
(REMIT_DATABASE_POOL_TIMEOUT_S), each cancelled by PostgreSQL past the statement timeout
(REMIT_STATEMENT_TIMEOUT_S).

These are the vault's settings, which stand for the core's and the acquirer's: the core's
REMIT_NETWORK_TIMEOUT_S, and the acquirer's REMIT_STATEMENT_TIMEOUT_S and
REMIT_DATABASE_POOL_TIMEOUT_S, must not exceed the vault's (`remit serve` hands one environment to
all of them). Set higher, an earlier forward could still commit after the vault has refused its
card, and the core would fail the attempt while the acquirer holds an authorization for it.

The times compared are the database's (`remit.vault.vault_clock`), never a vault host's: the
audit event's time, stamped by the vault process that sent the forward, and the time of the
vault process that answers the retry, which may be another. Two readings of the database's clock
may disagree by as much as the reads' error, which is allowed for too.
"""

from datetime import timedelta
from typing import Final

from remit.config import database_pool_timeout_s, network_timeout_s, statement_timeout_s
from remit.grpcutil.deadlines import ANSWER_MARGIN_S
from remit.grpcutil.send_time import VAULT_MARGIN_S
from remit.storage.database_clock import MAX_HOLD_S, MAX_ROUND_TRIP_S

# How far past T0 + the network's timeout the vault's call to the acquirer may end (see above).
_CALL_PAST_THE_TIMEOUT_S: Final = VAULT_MARGIN_S - ANSWER_MARGIN_S
# The acquirer's statements for an authorization, each after a wait for a connection.
_ACQUIRER_STATEMENTS: Final = 2
# How far two readings of the database's clock may disagree: a reading is off by up to half its
# round trip, and the time told holds still for up to MAX_HOLD_S rather than step back.
_CLOCK_ERROR_S: Final = MAX_ROUND_TRIP_S + MAX_HOLD_S


def forward_may_still_commit_for() -> timedelta:
    """How long after its audit event a forward may still commit an authorization at the
    acquirer, from the settings."""
    return timedelta(
        seconds=network_timeout_s()
        + _CALL_PAST_THE_TIMEOUT_S
        + _ACQUIRER_STATEMENTS * (database_pool_timeout_s() + statement_timeout_s())
        + _CLOCK_ERROR_S
    )
