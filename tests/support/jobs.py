"""Job-queue helpers for tests."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def run_out_job_leases(engine: AsyncEngine) -> None:
    """Let every job lease run out now, as the database's clock measures leases: what a
    test would otherwise wait a whole lease for."""
    async with engine.begin() as db:
        await db.execute(
            text(
                "UPDATE jobs SET locked_until = now() - interval '1 second' "
                "WHERE locked_until IS NOT NULL"
            )
        )
