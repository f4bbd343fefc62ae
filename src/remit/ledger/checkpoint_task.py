"""The worker's periodic checkpoints of the ledger (`remit.ledger.anchoring`), when
REMIT_LEDGER_CHECKPOINT_FILE is set."""

import logging
from pathlib import Path
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import Clock
from remit.core.secrets import Secret
from remit.ledger.anchoring import write_checkpoints
from remit.worker.runner import Periodic

log = logging.getLogger(__name__)

CHECKPOINT_TASK: Final = "ledger-checkpoints"


def checkpoint_task(
    engine: AsyncEngine, clock: Clock, path: Path, key: Secret[bytes], interval_s: float
) -> Periodic:
    """The worker's periodic checkpoints. Each copy of the worker writes its own (the file is
    appended to under a lock, so copies on one host can share it); a copy writes every chain
    at its first run, then the chains that moved since its last."""
    already: dict[str, int] = {}

    async def run() -> None:
        written = await write_checkpoints(engine, path, key, clock=clock, already=already)
        if written:
            log.info("ledger checkpoints: %d chain heads appended to %s", written, path)

    return Periodic(CHECKPOINT_TASK, interval_s, run)
