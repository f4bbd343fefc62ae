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
back full, each past the last challenge the one before it read (by expiry, then id), so a run
stops once the backlog is gone, and the challenges it could not end (being answered right now,
or failing) do not hold back those behind them. A challenge that fails (every time, say) is
left for the next run, and logged with the others the run left, once (`remit.worker.skipped`);
the others go on. A challenge whose intent had
already moved on without it (its charge failed with that change) is recorded expired, as the
page already shows it, so that no run reads it again.
"""

import logging
from datetime import datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import Clock, SystemClock
from remit.radar.authentication import Build, Expiry, ThreeDSecureService
from remit.radar.challenges import ChallengeRepository, ExpiredChallenge
from remit.worker.skipped import SkippedItems

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
        after: tuple[datetime, str] | None = None
        skipped = SkippedItems(log, "ending expired 3-D Secure challenges")
        try:
            while True:
                async with self._engine.begin() as db:
                    due = await ChallengeRepository(db).expired_pending(
                        self._clock.now(), limit=self._batch, after=after
                    )
                for challenge in due:
                    ended += await self._expire(challenge, skipped)
                if len(due) < self._batch:
                    return ended
                after = (due[-1].expires_at, due[-1].id)
        finally:
            skipped.report()

    async def _expire(self, challenge: ExpiredChallenge, skipped: SkippedItems) -> bool:
        """Whether the challenge left the pending ones; a failure is noted in `skipped`."""
        try:
            expiry = await self._three_d_secure.expire(
                challenge.account_id, challenge.id, build=self._build
            )
        except Exception as error:
            skipped.add(f"{challenge.id} of {challenge.account_id}", error)
            return False
        return expiry is not Expiry.LEFT
