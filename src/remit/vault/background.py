"""The vault's own periodic work, run inside the vault process (the worker cannot see its data).

- CVCs past their one-hour retention are destroyed even if no authorization ever came.
- As often, the CVC keys are kept up: the next hour's is made ahead of it, and those whose CVCs
  have all expired are deleted, and with them every copy of those CVCs the sweep could not
  reach (dead row versions, free space, the WAL, backups). A task of its own: the key file
  being unwritable must not stop the sweep, nor the database being down the deletion.
- After a key rotation, data keys still wrapped under older versions are re-wrapped in batches.
- Cards sealed before their account and metadata were bound into their seals are re-sealed, each
  under a fresh data key, so that an upgrade converges by itself (`VaultService.reseal_all`).
- The dead row versions that shredding and CVC destruction leave behind, which still hold the
  sealed number, the wrapped data key and the CVC, are pruned (autovacuum would get to them
  only once a fifth of the table is dead). A round leaves those a snapshot older than their
  deletion can still see, and those on a page another session has pinned just then (a scan, the
  checkpointer writing it: VACUUM does not wait for the pin); the next round removes them.
  Pruning removes them from the table; their bytes can stay in the pages' free space until
  reused, and in the WAL and backups, out of reach of the vault's SQL. Only removing the key
  version that wrapped their data keys from the key file (`VaultService.remove_key_version`,
  once it is retired) puts those copies beyond use; for a CVC, deleting its CVC key (below).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from remit.storage.outages import OutageLog
from remit.vault.service import VaultService

log = logging.getLogger(__name__)

CVC_SWEEP_INTERVAL_S: Final = 60.0
REWRAP_INTERVAL_S: Final = 5.0
# Only cards a vault of an earlier version stores are left to re-seal once a pass is done.
RESEAL_INTERVAL_S: Final = 60.0
PRUNE_INTERVAL_S: Final = 300.0
REQUESTER: Final = "vault-background"


async def _every(
    name: str, interval_s: float, run: Callable[[], Awaitable[None]], stop: asyncio.Event
) -> None:
    outage = OutageLog(log, f"vault task {name}")
    while not stop.is_set():
        try:
            await run()
        except Exception as error:
            outage.failed(error)
        else:
            outage.succeeded()
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        except TimeoutError:
            continue


def start_background(
    service: VaultService,
    stop: asyncio.Event,
    *,
    cvc_sweep_interval_s: float = CVC_SWEEP_INTERVAL_S,
    rewrap_interval_s: float = REWRAP_INTERVAL_S,
    reseal_interval_s: float = RESEAL_INTERVAL_S,
    prune_interval_s: float = PRUNE_INTERVAL_S,
) -> list[asyncio.Task[None]]:
    async def sweep_cvcs() -> None:
        dropped = await service.drop_expired_cvcs()
        if dropped:
            log.info("destroyed %d CVCs past their retention", dropped)

    async def keep_cvc_keys() -> None:
        await service.maintain_cvc_keys(requester=REQUESTER)

    async def rewrap() -> None:
        rewrapped = await service.rewrap_all(requester=REQUESTER)
        if rewrapped:
            log.info("re-wrapped %d data keys under the current key version", rewrapped)

    async def reseal() -> None:
        resealed = await service.reseal_all(requester=REQUESTER)
        if resealed:
            log.info(
                "re-sealed %d cards under fresh data keys bound to their accounts and metadata",
                resealed,
            )

    return [
        asyncio.create_task(_every("cvc-sweep", cvc_sweep_interval_s, sweep_cvcs, stop)),
        asyncio.create_task(_every("cvc-keys", cvc_sweep_interval_s, keep_cvc_keys, stop)),
        asyncio.create_task(_every("rewrap", rewrap_interval_s, rewrap, stop)),
        asyncio.create_task(_every("reseal", reseal_interval_s, reseal, stop)),
        asyncio.create_task(_every("prune", prune_interval_s, service.prune_shredded, stop)),
    ]
