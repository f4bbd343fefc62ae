"""Several core and api processes: the REST facade spreads its calls over every core process."""

import time
from collections.abc import Iterator

import psutil
import pytest
import stripe

from tests.support.accounts import create_account
from tests.support.platform import RunningPlatform, running_platform
from tests.support.postgres import WorkerDatabases

pytestmark = pytest.mark.own_platform(reason="a platform with several core and api processes")


@pytest.fixture(scope="module")
def platform(databases: WorkerDatabases) -> Iterator[RunningPlatform]:
    with running_platform(databases, REMIT_CORE_PROCESSES="2", REMIT_API_WORKERS="2") as running:
        yield running


def _children(platform: RunningPlatform, role: str) -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process(platform.process.pid).children(recursive=True)
        if child.cmdline()[-2:] == ["remit", role]
    ]


def _listening_ports(process: psutil.Process) -> set[int]:
    return {c.laddr.port for c in process.net_connections("tcp") if c.status == psutil.CONN_LISTEN}


def _peers(process: psutil.Process, ports: set[int]) -> set[int]:
    """Ports of the clients connected to `process` on any of `ports`."""
    return {
        c.raddr.port
        for c in process.net_connections("tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.laddr.port in ports and c.raddr
    }


def test_every_core_process_serves_the_rest_facade(platform: RunningPlatform) -> None:
    cores, apis = _children(platform, "core"), _children(platform, "api")
    assert (len(cores), len(apis)) == (2, 2)
    # Radar off: one card paying a dozen times a second is what its velocity rules block.
    account = create_account(platform.core, token=platform.internal_token, radar_enabled=False)
    client = stripe.StripeClient(
        account.secret_key, base_addresses={"api": platform.api_base}, max_network_retries=0
    )
    intents = [
        client.v1.payment_intents.create(
            params={
                "amount": 1000 + n,
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "confirm": True,
                "return_url": "https://shop.example/return",
            }
        )
        for n in range(12)
    ]
    assert [intent.status for intent in intents] == ["succeeded"] * 12
    # Each core process listens on the shared port and on one of its own; every api process
    # holds a connection to each core process's own port (round robin over all of them).
    own_ports = [_listening_ports(core) - {platform.core.port} for core in cores]
    assert all(len(ports) == 1 for ports in own_ports)
    api_ports = {c.laddr.port for api in apis for c in api.net_connections("tcp") if c.raddr}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        served = [
            _peers(core, ports) & api_ports for core, ports in zip(cores, own_ports, strict=True)
        ]
        if all(served):
            break
        time.sleep(0.2)
    assert all(served), served
