"""What `remit vault audit` asks the vault for (run by `remit.vault.admin.list_audit_events`).

Kept apart from the command itself: every remit process builds the whole command line parser
when it starts, and the command imports gRPC and the vault's stubs, which a process that never
lists the audit log does not need.
"""

from dataclasses import dataclass

# The wire names of AuditAction, as the listing prints them (a unit test keeps them equal to
# the proto enum's).
AUDIT_ACTIONS = (
    "tokenize",
    "resolve_test_card",
    "get_details",
    "forward",
    "delete",
    "rotate_key",
    "rewrap",
    "set_minimum_version",
    "list_cards",
    "remove_key_version",
    "create_cvc_key",
    "destroy_cvc_key",
    "reseal",
    "put_back_cvc",
    "update_details",
    "declare_key_version_lost",
    "check_fingerprints",
)
# Events a page unless --limit says otherwise, and the most the vault lists in one.
DEFAULT_AUDIT_LIMIT = 20
MAX_AUDIT_LIMIT = 100


@dataclass(frozen=True)
class AuditQuery:
    """The events wanted: the filters `ListAuditEvents` takes, as typed on the command line
    (`since` and `before` each a unix timestamp or an ISO 8601 time)."""

    limit: int = DEFAULT_AUDIT_LIMIT
    starting_after: str | None = None
    account: str | None = None
    token: str | None = None
    requester: str | None = None
    action: str | None = None
    since: str | None = None
    before: str | None = None

    def filter_flags(self) -> list[str]:
        """The command line flags that ask for these events (every one but the page's start),
        for the command that lists the next page."""
        flags = [
            ("--account", self.account),
            ("--token", self.token),
            ("--requester", self.requester),
            ("--action", self.action),
            ("--since", self.since),
            ("--before", self.before),
        ]
        return [
            *(part for flag, value in flags if value is not None for part in (flag, value)),
            "--limit",
            str(self.limit),
        ]
