import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.acquirer.service import AcquirerService
from remit.core.clock import FixedClock
from tests.integration.acquirer.support import NOW


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def service(acquirer_engine: AsyncEngine, clock: FixedClock) -> AcquirerService:
    return AcquirerService(acquirer_engine, clock)
