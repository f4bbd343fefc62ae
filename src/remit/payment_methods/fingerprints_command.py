"""`remit card-fingerprints convert`: one pass of the conversion the worker runs every ten
minutes (`remit.payment_methods.fingerprint_conversion`), now, for an upgrade past vault
migration 0010 to be done sooner, or to see how far it is.

It reads and writes the core database itself and asks the vault over its API, as the admin: a
core database not migrated to this version (remit migrate) is refused. It prints what the pass
did, counts only. Exit codes (`remit.command_exits`): 0 when every payment method and token is
known to hold its account's own fingerprint; 1 when some are left, of cards the vault has not
re-sealed yet (run `remit vault reseal-cards`, then this again) or that it could not answer
for. Some stay, run after run: a card deleted before its re-seal, one that does not open, and
one under a key version lost or missing from the key file, which the re-seal cannot open (it
is answered as not re-sealed yet until the missing version is back, and for good if lost).
2 on a schema not at this version's or a call the vault refused; 75 when the database or the
vault was out of reach. Running it again, or beside the worker, is safe: a row converted is
never read again.
"""

import asyncio
from typing import Final, TextIO

from remit.command_exits import EXIT_CLEAN, EXIT_FINDINGS
from remit.config import PlatformConfig
from remit.payment_methods.fingerprint_conversion import ConversionCounts, FingerprintConversion

COMMAND: Final = "card-fingerprints convert"
REQUESTER: Final = "remit card-fingerprints convert"


def render_counts(counts: ConversionCounts) -> str:
    lines = [
        f"checked {counts.checked} payment methods and tokens with the vault",
        f"gave {counts.converted} their account's own fingerprint",
        f"rewrote {counts.list_items} Radar card_fingerprint list items",
        f"rewrote the fingerprint {counts.charges} charges show",
        f"rewrote {counts.rules} Radar rules naming a card_fingerprint",
    ]
    if counts.pending:
        lines.append(
            f"left {counts.pending} whose cards the vault has not re-sealed yet: run "
            "`remit vault reseal-cards`, then this again (a card under a key version lost or "
            "missing from the key file is re-sealed only once that version is back)"
        )
    if counts.unknown:
        lines.append(
            f"left {counts.unknown} the vault could not answer for (a card deleted before its "
            "re-seal, or one it cannot open: see the vault's log); they keep the fingerprint "
            "every account shared, and are left on every run"
        )
    return "".join(f"{line}\n" for line in lines)


def convert_fingerprints_command(config: PlatformConfig, *, out: TextIO) -> int:
    """One conversion pass; its counts on `out`. 1 if any row is left unconverted."""
    counts = _convert(config)
    out.write(render_counts(counts))
    return EXIT_FINDINGS if counts.pending or counts.unknown else EXIT_CLEAN


def _convert(config: PlatformConfig) -> ConversionCounts:
    from remit.databases import require_at_head, resolve_databases
    from remit.grpcutil.internal_auth import InternalAccess, internal_channel
    from remit.payment_methods.vault_client import GrpcCardVault
    from remit.storage.engine import dispose, make_engine
    from remit.storage.reachability import core_database

    resolved = resolve_databases(config, needed=("core",))
    try:
        database = core_database(resolved.config)
        require_at_head([database], COMMAND)

        async def run() -> ConversionCounts:
            engine = make_engine(database.url, pool_size=1)
            try:
                async with internal_channel(
                    config.vault.target, InternalAccess.of(config)
                ) as channel:
                    vault = GrpcCardVault(channel, requester=REQUESTER)
                    return await FingerprintConversion(vault, engine).run()
            finally:
                await dispose(engine)

        return asyncio.run(run())
    finally:
        resolved.stop_embedded()
