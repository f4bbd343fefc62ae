"""`remit radar ...` run against a RadarService served in-process over real gRPC, for one
account, as the command line runs it (`remit.radar.tools.run_command`)."""

import argparse
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.config import TOKEN_ENV, from_env
from remit.grpcutil.errors import ErrorMappingInterceptor
from remit.grpcutil.metadata import ACCOUNT_KEY, KEY_ID_KEY
from remit.radar import tools
from remit.radar.grpc import RadarServicer
from remit.radar.service import RadarService
from remit_api.radar.v1 import radar_pb2_grpc
from tests.support.ports import free_port

RunCommand = Callable[..., Awaitable[str]]


@asynccontextmanager
async def radar_cli(
    engine: AsyncEngine,
    account_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    key_id: str = "key_cli",
) -> AsyncIterator[RunCommand]:
    """`run(radar_group=..., radar_command=..., ...)` runs one command and returns what it
    printed; the API key it is given authenticates as `key_id` of `account_id`."""
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    radar_pb2_grpc.add_RadarServiceServicer_to_server(RadarServicer(RadarService(engine)), server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()

    async def metadata(_channel: grpc.aio.Channel, _api_key: str) -> tuple[tuple[str, str], ...]:
        return ((ACCOUNT_KEY, account_id), (KEY_ID_KEY, key_id))

    monkeypatch.setattr(tools, "account_metadata", metadata)
    config = from_env(
        {
            "REMIT_DATA_DIR": str(tmp_path),
            "REMIT_CORE_HOST": "127.0.0.1",
            "REMIT_CORE_PORT": str(port),
            TOKEN_ENV: "t" * 32,
        }
    )

    async def run(**arguments: object) -> str:
        out = io.StringIO()
        assert await tools.run_command(config, argparse.Namespace(**arguments), "sk_x", out) == 0
        return out.getvalue()

    try:
        yield run
    finally:
        await server.stop(0)
