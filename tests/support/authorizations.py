"""Authorization helpers for tests."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def let_authorization_expire(engine: AsyncEngine, intent_id: str) -> None:
    """Make the intent's authorization 7 days old, as the database's clock measures its age
    (`remit.payments.authorization_age`): what a test would otherwise wait a week for."""
    async with engine.begin() as db:
        await db.execute(
            text(
                "UPDATE charges SET authorized_at = now() - interval '7 days 1 second' "
                "WHERE payment_intent_id = :intent_id"
            ),
            {"intent_id": intent_id},
        )
