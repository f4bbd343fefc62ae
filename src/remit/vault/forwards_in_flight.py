"""How long a forward the vault sent may still commit an authorization at the acquirer
(`remit.grpcutil.forward_in_flight` says why the vault asks).

A forward is audited, committed, before the card leaves the vault (`VaultService.forward`), so
its audit event's time comes before the send. The vault's call to the acquirer lasts at most
the network's timeout (REMIT_NETWORK_TIMEOUT_S); an authorization the acquirer received within
it waits for a connection at most the pool's wait (REMIT_DATABASE_POOL_TIMEOUT_S) and is then
one statement, which PostgreSQL cancels past the statement timeout (REMIT_STATEMENT_TIMEOUT_S),
whether or not the call that brought it is still waiting (`remit.acquirer.settlement_clock`).
The audit event's time is the clock of the vault process that sent it, another's may compare
it: the gap the platform warns past (`remit.storage.database_clock`) is allowed for too.
"""

from datetime import timedelta

from remit.config import (
    DEFAULT_MAX_CLOCK_SKEW_S,
    database_pool_timeout_s,
    network_timeout_s,
    statement_timeout_s,
)


def forward_may_still_commit_for() -> timedelta:
    """How long after its audit event a forward may still commit an authorization at the
    acquirer, from the settings."""
    return timedelta(
        seconds=network_timeout_s()
        + database_pool_timeout_s()
        + statement_timeout_s()
        + DEFAULT_MAX_CLOCK_SKEW_S
    )
