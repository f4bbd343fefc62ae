"""The worker's sweep of 3-D Secure challenges nobody answered.

A challenge ends when the cardholder answers it, and an answer after its hour is up ends it
`expired`: the intent returns to `requires_payment_method` and its charge, `pending` until then,
fails as never sent to the network (`remit.radar.authentication`). A challenge nobody answers,
on an intent nobody touches again, would leave that charge `pending` for ever beside the
intent. This sweep ends every such challenge once it has expired, through the very step a late
answer takes (`ThreeDSecureService.expire`), so nothing tells the two apart but the absence of
a request.

Runs: every `INTERVAL_S`, in one worker copy at a time (`remit.worker.alone`); a second copy
would only find the same challenges and wait on the same locks. A run reads the pending
challenges expired by then, soonest first, `BATCH` at a time through the partial index of
pending challenges, and ends each in a transaction of its own; it reads batches while they come
back full and end something, so a run stops once the backlog is gone, and a batch whose every
challenge is being answered right now is left to the next run. A challenge that fails (every
time, say) is logged and left for the next run; the others go on. A challenge whose intent had
already moved on without it (its charge failed with that change) is recorded expired, as the
page already shows it, so that no run reads it again.
"""

import logging
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import Clock, SystemClock
from remit.radar.authentication import Build, Expiry, ThreeDSecureService
from remit.radar.challenges import ChallengeRepository
from remit.storage.outages import log_failure

log = logging.getLogger(__name__)

TASK: Final = "three-d-secure-expired-challenges"
INTERVAL_S: Final = 60.0
BATCH: Final = 100


class ExpiredChallengeSweep:
    def __init__(
        self,
        engine: AsyncEngine,
        three_d_secure: ThreeDSecureService,
        *,
        build: Build,
        clock: Clock | None = None,
        batch: int = BATCH,
    ) -> None:
        # `build`: the answer a later press of either button replays, as after a late answer.
        self._engine = engine
        self._three_d_secure = three_d_secure
        self._build = build
        self._clock = clock or SystemClock()
        self._batch = batch

    async def run(self) -> int:
        """End the challenges expired unanswered, a batch at a time; returns how many left the
        pending ones (ended, or recorded expired when their intent had moved on)."""
        ended = 0
        while True:
            async with self._engine.begin() as db:
                due = await ChallengeRepository(db).expired_pending(
                    self._clock.now(), limit=self._batch
                )
            done = 0
            for account_id, challenge_id in due:
                done += await self._expire(account_id, challenge_id)
            ended += done
            if len(due) < self._batch or done == 0:
                return ended

    async def _expire(self, account_id: str, challenge_id: str) -> bool:
        """Whether the challenge left the pending ones; a failure is logged, not raised."""
        try:
            expiry = await self._three_d_secure.expire(account_id, challenge_id, build=self._build)
        except Exception as error:
            log_failure(log, f"ending expired 3-D Secure challenge {challenge_id} of "
                        f"{account_id} (the next run tries again)", error)  # fmt: skip
            return False
        return expiry is not Expiry.LEFT
