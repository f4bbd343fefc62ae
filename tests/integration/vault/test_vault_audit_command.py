"""`remit vault audit` against a real vault (its internal token checked, on its database): the
audit log newest first, one line an event with who asked and why quoted, filtered as
`ListAuditEvents` filters it, a page at a time, never card data; bad flags refused (2) before
anything is asked, a vault not running to be retried later (75)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from sqlalchemy import insert

from remit.vault.forwarding import grpc_destinations
from remit.vault.grpc import VaultServicer
from remit.vault.service import VaultService
from remit.vault.tables import audit_events
from remit_api.vault.v1 import vault_pb2, vault_pb2_grpc
from tests.integration.test_admin_command_exits import serving
from tests.integration.vault.conftest import START, VaultHarness
from tests.support.commands import Ran, remit
from tests.support.ports import free_port

pytestmark = pytest.mark.anyio

NUMBER = "4242424242424242"
# A requester recorded before the vault refused line breaks in one: a line that reads as
# another event.
FORGED = 'core\n2026-03-01T12:09:00+00:00  vae_forged  forward  succeeded  by "core"'


@asynccontextmanager
async def _served(harness: VaultHarness) -> AsyncIterator[str]:
    """The vault served as `remit vault` serves it (the internal token checked); its port."""
    service = VaultService(harness.engine, harness.keys, grpc_destinations({}), clock=harness.clock)

    def register(server: grpc.aio.Server) -> None:
        vault_pb2_grpc.add_VaultServiceServicer_to_server(VaultServicer(service), server)

    try:
        async with serving(register) as port:
            yield port
    finally:
        await service.close()


async def _tokenize(harness: VaultHarness, account: str, requester: str) -> str:
    reply = await harness.vault.stub.TokenizeCard(
        vault_pb2.TokenizeCardRequest(
            account_id=account, number=NUMBER, exp_month=12, exp_year=2030, requester=requester,
        )
    )  # fmt: skip
    harness.clock.advance(60)
    return reply.vault_token


async def _recorded(harness: VaultHarness) -> tuple[str, str]:
    """Four events a minute apart: two cards stored, a forward of the first and an event
    recorded with a line break in its requester. The two cards' tokens."""
    first = await _tokenize(harness, "acct_1", "api")
    second = await _tokenize(harness, "acct_2", "core")
    await harness.vault.stub.ForwardAuthorization(
        vault_pb2.ForwardAuthorizationRequest(
            account_id="acct_1", vault_token=first, destination="acquirer", amount=2000,
            currency="usd", reference="ch_1", purpose="payment_intent.confirm pi_1",
            requester="core",
        )
    )  # fmt: skip
    harness.clock.advance(60)
    async with harness.engine.begin() as db:
        await db.execute(
            insert(audit_events).values(
                id="vae_old", created_at=harness.clock.now(), action="get_details",
                requester=FORGED, purpose="GetCardDetails", token=second, account_id="acct_2",
                destination="", reference="", succeeded=True, key_version=0,
            )
        )  # fmt: skip
    return first, second


async def test_the_audit_log_is_listed_newest_first_one_quoted_line_an_event(
    harness: VaultHarness, tmp_path: Path
) -> None:
    first, second = await _recorded(harness)
    async with _served(harness) as port:
        listed = await remit("vault", "audit", tmp_path=tmp_path, REMIT_VAULT_PORT=port)

    assert (listed.returncode, listed.stderr) == (0, "")
    lines = listed.stdout.splitlines()
    assert len(lines) == 4, listed.stdout
    assert lines[0] == (
        "2026-03-01T12:03:00+00:00  vae_old  get_details  succeeded  "
        'by "core\\n2026-03-01T12:09:00+00:00  vae_forged  forward  succeeded  by \\"core\\""  '
        f'purpose "GetCardDetails"  account acct_2  token {second}'
    )
    assert lines[1].startswith("2026-03-01T12:02:00+00:00  vae_")
    assert lines[1].endswith(
        '  forward  succeeded  by "core"  purpose "payment_intent.confirm pi_1"  account acct_1  '
        f'token {first}  destination acquirer  reference "ch_1"  key version 1'
    )
    assert lines[2].startswith("2026-03-01T12:01:00+00:00  vae_")
    assert lines[2].endswith(
        f'  tokenize  succeeded  by "core"  purpose "tokenize"  account acct_2  token {second}  '
        "key version 1"
    )
    assert lines[3].startswith("2026-03-01T12:00:00+00:00  vae_")
    assert lines[3].endswith(
        f'  tokenize  succeeded  by "api"  purpose "tokenize"  account acct_1  token {first}  '
        "key version 1"
    )
    assert NUMBER not in listed.stdout
    assert NUMBER[-4:] not in listed.stdout


async def _audit(port: str, tmp_path: Path, *flags: str) -> Ran:
    return await remit("vault", "audit", *flags, tmp_path=tmp_path, REMIT_VAULT_PORT=port)


def _ids(ran: Ran) -> list[str]:
    assert (ran.returncode, ran.stderr) == (0, ""), ran.stderr
    return [line.split()[1] for line in ran.stdout.splitlines()]


async def test_the_filters_list_only_the_events_they_match(
    harness: VaultHarness, tmp_path: Path
) -> None:
    first, _ = await _recorded(harness)
    async with _served(harness) as port:
        every = _ids(await _audit(port, tmp_path))
        by_account = _ids(await _audit(port, tmp_path, "--account", "acct_1"))
        by_token = _ids(await _audit(port, tmp_path, "--token", first))
        by_requester = _ids(await _audit(port, tmp_path, "--requester", "core"))
        by_action = _ids(await _audit(port, tmp_path, "--action", "forward"))
        between = _ids(
            await _audit(
                port, tmp_path, "--since", "2026-03-01T12:01:00Z",
                "--before", str(int(START.timestamp()) + 120),
            )
        )  # fmt: skip
        combined = await _audit(port, tmp_path, "--account", "acct_2", "--action", "forward")

    # Newest first: vae_old, the forward, the second card, the first.
    old, forward, second_card, first_card = every
    assert by_account == [forward, first_card]
    assert by_token == [forward, first_card]
    assert by_requester == [forward, second_card]  # the forged one's requester is not "core"
    assert by_action == [forward]
    assert between == [second_card]
    assert (combined.returncode, combined.stdout) == (0, "no audit events matching the filters\n")
    assert old == "vae_old"


async def test_the_log_is_listed_a_page_at_a_time(harness: VaultHarness, tmp_path: Path) -> None:
    await _recorded(harness)
    async with _served(harness) as port:
        every = _ids(await _audit(port, tmp_path))
        page = await _audit(port, tmp_path, "--requester", "core", "--limit", "1")
        more = page.stdout.splitlines()[-1]
        assert more.startswith("more: remit vault audit ")
        rest = await _audit(port, tmp_path, *more.removeprefix("more: remit vault audit ").split())
        last = await _audit(port, tmp_path, "--starting-after", every[-1])

    assert page.returncode == 0
    assert more == (
        f"more: remit vault audit --requester core --limit 1 --starting-after {every[1]}"
    )
    assert [line.split()[1] for line in page.stdout.splitlines()[:-1]] == [every[1]]
    assert _ids(rest) == [every[2]]  # the last page: no more line
    assert (last.returncode, last.stdout) == (0, f"no audit events older than {every[-1]}\n")


@pytest.mark.parametrize(
    ("flags", "refusal"),
    [
        (("--limit", "101"), "--limit must be between 1 and 100, got 101"),
        (("--limit", "0"), "--limit must be between 1 and 100, got 0"),
        (("--since", "yesterday"), "--since must be a unix timestamp or ISO 8601 time"),
        (("--before", "12/30"), "--before must be a unix timestamp or ISO 8601 time"),
        (("--action", "steal"), "argument --action: invalid choice: 'steal'"),
        (("--starting-after", "vae_nope"), "No such audit event: 'vae_nope'"),
    ],
)
async def test_bad_flags_are_refused_in_one_line(
    harness: VaultHarness, tmp_path: Path, flags: tuple[str, ...], refusal: str
) -> None:
    async with _served(harness) as port:
        ran = await _audit(port, tmp_path, *flags)
    assert (ran.returncode, ran.stdout) == (2, "")
    line = ran.failure_line()
    assert line.startswith("remit vault audit: ")
    assert refusal in line


async def test_a_vault_not_running_is_to_be_retried_later(tmp_path: Path) -> None:
    port = str(free_port())
    ran = await remit("vault", "audit", tmp_path=tmp_path, REMIT_VAULT_PORT=port)
    assert (ran.returncode, ran.stdout) == (75, "")
    assert ran.failure_line() == (
        f"remit vault audit: the vault is not reachable at 127.0.0.1:{port}; is it running?"
    )
