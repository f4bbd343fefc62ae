"""`remit serve`: start every process of the platform, watch them, and stop them all cleanly.

A process that dies is started again, as a service manager would (a crash, the kernel's OOM
killer, an operator's mistaken kill): nothing is lost by it, since every request in flight
resumes from its idempotency key's recovery point and claimed jobs are leased. A process that
keeps dying (`RESTART_LIMIT` times within `RESTART_WINDOW_S`) is a fault a restart will not
mend, and then the whole platform stops with exit code 1. A process that exits with 75
(EX_TEMPFAIL: it could not reach its database when it started, and said which) is not dying of
a fault: it is started again every `DATABASE_WAIT_S` for as long as the outage lasts, without
counting against that limit, while the others ride the outage out.

Children run in their own sessions so that Ctrl-C reaches only the supervisor, which then stops
them in dependency order (front door first, data owners last); so does SIGTERM, and SIGHUP
(the terminal running it closed). A second Ctrl-C, SIGTERM or SIGHUP stops at once: the
processes still stopping are killed, and migrations still running are interrupted
(`Supervisor.preparing`). Each child also asks the kernel to SIGTERM it if the supervisor dies
(`remit.readiness.follow_parent`), so no process outlives it even after a SIGKILL.
"""

import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from remit.command_exits import EXIT_REFUSED, EXIT_TEMPORARY_FAILURE
from remit.config import (
    CORE_INSTANCE_PORT_ENV,
    ConfigError,
    Endpoint,
    PlatformConfig,
    environment_for,
    network_timeout_s,
    shutdown_grace_s,
)
from remit.core.atomic_file import AtomicFile
from remit.grpcutil.internal_auth import InternalAccess, internal_sync_channel
from remit.grpcutil.server import CLEANUP_WAIT_S
from remit.readiness import PARENT_PID_ENV, READY_FD_ENV
from remit.webhooks.domain import DELIVERY_TIMEOUT_S
from remit.worker.leases import stop_drain_for

log = logging.getLogger(__name__)

START_ORDER = ("acquirer", "vault", "core", "worker", "api")
# Front door first, data owners last; every copy of the roles of a stage is sent SIGTERM at
# once, so that a stop takes as long as its slowest stage's slowest process, not the sum of
# every copy's. The core and the worker call neither each other nor anything stopped before
# them; the vault's forwards come from them, the acquirer's calls from the vault.
STOP_STAGES = (("api",), ("worker", "core"), ("vault",), ("acquirer",))
# Beyond the longest a process's own stop lets its work run (`stop_grace_s`): closing its
# channels and pools, and the interpreter's exit.
STOP_MARGIN_S = 10.0
READY_TIMEOUT_S = 60.0
RESTART_LIMIT = 5
RESTART_WINDOW_S = 60.0
# The pause before the n-th restart within the window is n times this.
RESTART_PAUSE_S = 0.5
# The pause before starting again a process that could not reach its database.
DATABASE_WAIT_S = 5.0


@dataclass
class Child:
    role: str
    process: subprocess.Popen[bytes]
    ready_fd: int
    # What it was started with, so that it can be started again the same way.
    env: dict[str, str] = field(default_factory=dict)
    # The address only this copy answers on (None: the role's shared address).
    address: Endpoint | None = None

    def close_ready_fd(self) -> None:
        """Close the readiness pipe, once: a Child is dropped whatever became of its start,
        and a restart loop that leaked one descriptor per attempt would run out of them."""
        if self.ready_fd >= 0:
            fd, self.ready_fd = self.ready_fd, -1
            os.close(fd)


@dataclass
class RestartBudget:
    """How many times each role may be restarted within a sliding window."""

    limit: int = RESTART_LIMIT
    window_s: float = RESTART_WINDOW_S
    now: Callable[[], float] = time.monotonic
    _restarts: dict[str, deque[float]] = field(default_factory=dict)

    def take(self, role: str) -> int | None:
        """Count a restart of `role`: its number within the window, or None when the role has
        used up its restarts (it keeps dying)."""
        now = self.now()
        recent = self._restarts.setdefault(role, deque())
        while recent and now - recent[0] > self.window_s:
            recent.popleft()
        if len(recent) >= self.limit:
            return None
        recent.append(now)
        return len(recent)


def spawn_process(role: str, env: dict[str, str], stdout: IO[bytes] | None = None) -> Child:
    """Start `remit ROLE` in its own session, with a readiness pipe."""
    read_fd, write_fd = os.pipe()
    child_env = {**env, READY_FD_ENV: str(write_fd), PARENT_PID_ENV: str(os.getpid())}
    process = subprocess.Popen(
        [sys.executable, "-m", "remit", role],
        env=child_env,
        pass_fds=(write_fd,),
        start_new_session=True,
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout is not None else None,
    )
    os.close(write_fd)
    return Child(role=role, process=process, ready_fd=read_fd, env=env)


def stop_grace_s() -> float:
    """How long a stage of the stop waits for its processes before killing them: longer than
    the longest a process's own stop lets its work run, or a step it would let finish is cut
    off by SIGKILL (its key then held for a lease, a retry answered 409). The longest: a
    core's, its grace for the calls it serves (`shutdown_grace_s`) then the unwinding of those
    cancelled (`CLEANUP_WAIT_S`), or a worker's, its running jobs (`stop_drain_for` a
    webhook delivery's POST, `remit.worker.registry`); either then
    waits for the network steps outliving their cancelled callers (`PaymentsService.drain`, up
    to the network timeout)."""
    calls_s = max(shutdown_grace_s() + CLEANUP_WAIT_S, stop_drain_for(DELIVERY_TIMEOUT_S))
    return calls_s + network_timeout_s() + STOP_MARGIN_S


def await_ready(
    child: Child, deadline: float, stopping: Callable[[], bool] = lambda: False
) -> None:
    """Until `child` says it is ready; returns early once `stopping` (a SIGTERM meanwhile).
    The readiness pipe is closed however this ends: it is read nowhere else."""
    try:
        _await_ready(child, deadline, stopping)
    finally:
        child.close_ready_fd()


def _await_ready(child: Child, deadline: float, stopping: Callable[[], bool]) -> None:
    # poll, not select: select refuses descriptors past 1024, which a supervisor with many
    # children (or a test process with many files open) may be handed.
    readiness = select.poll()
    readiness.register(child.ready_fd, select.POLLIN)
    while time.monotonic() < deadline and not stopping():
        if child.process.poll() is not None:
            code = child.process.returncode
            raise StartupError(f"{child.role} exited with code {code}", exit_code=code)
        if readiness.poll(200):
            if os.read(child.ready_fd, 64).startswith(b"ready"):
                return
            try:
                code = child.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                raise StartupError(f"{child.role} gave up on starting but did not exit") from None
            raise StartupError(f"{child.role} exited with code {code} while starting", code)
    if stopping():
        return
    raise StartupError(f"{child.role} was not ready within {READY_TIMEOUT_S:.0f}s")


def grpc_healthy(
    endpoint: Endpoint, timeout_s: float = 2.0, *, access: InternalAccess | None = None
) -> bool:
    """Whether the service answers its health check (which needs no token, but does need the
    platform's mutual TLS when it is configured)."""
    with internal_sync_channel(endpoint.target, access or InternalAccess()) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout_s
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def http_healthy(endpoint: Endpoint, timeout_s: float = 2.0) -> bool:
    url = f"http://{endpoint.target}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class StartupError(Exception):
    """A process did not come up; the message says which and why. `exit_code`: the one it
    exited with, when it did."""

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    @property
    def refused(self) -> bool:
        """Whether the process refused to start (exit 2: a setting of its is missing or
        wrong, which it said in its own line), rather than failed."""
        return self.exit_code == EXIT_REFUSED


class Supervisor:
    def __init__(
        self,
        config: PlatformConfig,
        roles: Sequence[str] = START_ORDER,
        budget: RestartBudget | None = None,
        database_wait_s: float = DATABASE_WAIT_S,
    ) -> None:
        self._config = config
        self._roles = roles
        self._children: list[Child] = []
        self._stopping = False
        # A second stop request: kill rather than wait.
        self._at_once = False
        # The processes being stopped now, for a second request to kill.
        self._stage: Sequence[Child] = ()
        # Within `preparing`: a second request interrupts it.
        self._preparing = False
        self._budget = budget or RestartBudget()
        self._database_wait_s = database_wait_s

    def use_config(self, config: PlatformConfig) -> None:
        """Start the processes with `config`: the one with the embedded databases' URLs, which
        are known only once those have started, after the stop handlers went in."""
        self._config = config

    def health_checks(self) -> dict[str, Callable[[], bool]]:
        c = self._config
        return {
            "acquirer": lambda: grpc_healthy(c.acquirer, access=InternalAccess.of(c)),
            "vault": lambda: grpc_healthy(c.vault, access=InternalAccess.of(c)),
            "core": lambda: grpc_healthy(c.core, access=InternalAccess.of(c)),
            "api": lambda: http_healthy(c.api),
        }

    def _copies(
        self, role: str, env: dict[str, str]
    ) -> list[tuple[dict[str, str], Endpoint | None]]:
        """The environment of each copy of `role`, and the address only that copy answers on
        (None when the role's shared address is the one to check)."""
        c = self._config
        if role == "api":
            return [(env, None)] * c.api_workers
        if role == "core" and c.core_instance_ports:
            return [
                (
                    {**env, CORE_INSTANCE_PORT_ENV: str(port)},
                    Endpoint(c.core.host, port),
                )
                for port in c.core_instance_ports
            ]
        return [(env, None)]

    def start(self) -> None:
        """Start every process at once (imports dominate start-up), then check each in order."""
        if self._stopping:
            return  # asked to stop before anything started (while migrating, say)
        env = {**os.environ, **self._config.to_env()}
        for role in self._roles:
            for copy_env, address in self._copies(role, environment_for(role, env)):
                child = spawn_process(role, copy_env)
                child.address = address
                self._children.append(child)
        deadline = time.monotonic() + READY_TIMEOUT_S
        for child in self._children:
            self._check_up(child, deadline)

    def _check_up(self, child: Child, deadline: float) -> None:
        await_ready(child, deadline, lambda: self._stopping)
        if self._stopping:
            return  # asked to stop while starting: `stop` follows
        if child.address is not None:
            healthy = grpc_healthy(child.address, access=InternalAccess.of(self._config))
        else:
            check = self.health_checks().get(child.role)
            healthy = check is None or check()
        if not healthy:
            raise StartupError(f"{child.role} said it was ready but fails its health check")
        log.info("%s is up (pid %d)", child.role, child.process.pid)

    @property
    def stopping(self) -> bool:
        return self._stopping

    @contextlib.contextmanager
    def preparing(self) -> Iterator[None]:
        """The work before any process starts (migrations, which a concurrent index build can
        make long): a first stop request lets it finish, a second raises KeyboardInterrupt in
        it, so that what encloses it still stops the embedded databases."""
        self._preparing = True
        try:
            yield
        finally:
            self._preparing = False

    def request_stop(self, signum: int, _frame: FrameType | None) -> None:
        """A signal handler: the first request stops in order, a second at once. Each says so,
        for an operator otherwise left guessing whether to reach for kill -9 (which would
        leave the embedded PostgreSQL running)."""
        if not self._stopping:
            self._stopping = True
            if self._preparing:
                log.warning(
                    "stopping once the databases are started and migrated; send again to "
                    "interrupt them"
                )
            else:
                log.warning("stopping; send again to stop at once")
            return
        self._at_once = True
        if self._preparing:
            log.warning("stopping at once: interrupting the migrations")
            raise KeyboardInterrupt
        log.warning("stopping at once: killing the processes still running")
        for child in self._stage:
            _kill(child)

    def wait(self) -> int:
        """Block until asked to stop, restarting children that die; return the exit code to use
        (1 when a child keeps dying)."""
        while not self._stopping:
            for index, child in enumerate(self._children):
                code = child.process.poll()
                if code is None or self._stopping:
                    continue
                if code == EXIT_TEMPORARY_FAILURE:
                    log.warning("%s could not reach its database; starting it again in %.0fs",
                                child.role, self._database_wait_s)  # fmt: skip
                else:
                    log.error("%s (pid %d) exited unexpectedly with code %s", child.role,
                              child.process.pid, code)  # fmt: skip
                restarted = self._restart(child)
                if restarted is None:
                    return 1
                if restarted is not child:
                    child.close_ready_fd()
                self._children[index] = restarted
            time.sleep(0.2)
        return 0

    def _restart(self, dead: Child) -> Child | None:
        """Start `dead` again as it was started; None when its role keeps dying."""
        waited_for_database = dead.process.returncode == EXIT_TEMPORARY_FAILURE
        if waited_for_database:
            attempt = 0
            self._pause(self._database_wait_s)
        else:
            taken = self._budget.take(dead.role)
            if taken is None:
                log.error("%s died %d times within %.0fs; stopping the platform", dead.role,
                          self._budget.limit, self._budget.window_s)  # fmt: skip
                return None
            attempt = taken
            self._pause(RESTART_PAUSE_S * attempt)
        if self._stopping:
            return dead
        child = spawn_process(dead.role, dead.env)
        child.address = dead.address
        try:
            self._check_up(child, time.monotonic() + READY_TIMEOUT_S)
        except StartupError as error:
            # Left in the list: the next pass sees it dead (or kills it on stop) and counts it.
            if child.process.returncode != EXIT_TEMPORARY_FAILURE:
                # (Its database still out of reach, it said so itself; the next pass says
                # when it is tried again.)
                log.error("restarting %s failed: %s", dead.role, error)
            if child.process.poll() is None:
                child.process.kill()
                child.process.wait()
            return child
        if waited_for_database:
            log.info("%s started again: its database is back", dead.role)
        else:
            log.info("%s restarted (restart %d within %.0fs)", dead.role, attempt,
                     self._budget.window_s)  # fmt: skip
        return child

    def _pause(self, seconds: float) -> None:
        """Sleep for `seconds`, or until asked to stop."""
        deadline = time.monotonic() + seconds
        while not self._stopping and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(0.2, left))

    def stop(self) -> None:
        staged = {role for stage in STOP_STAGES for role in stage}
        others = tuple(c.role for c in reversed(self._children) if c.role not in staged)
        for stage in (*STOP_STAGES, *((role,) for role in others)):
            self._stop_together([c for c in self._children if c.role in stage])
        for child in self._children:
            child.close_ready_fd()  # those never waited for: a start cut short
        self._children.clear()

    def _stop_together(self, children: Sequence[Child]) -> None:
        """SIGTERM every one of `children` at once; kill those still running after the grace,
        or at once when asked to stop again (before this stage or during it)."""
        self._stage = children
        try:
            for child in children:
                if self._at_once:
                    _kill(child)
                elif child.process.poll() is None:
                    child.process.send_signal(signal.SIGTERM)
            grace = stop_grace_s()
            deadline = time.monotonic() + grace
            for child in children:
                try:
                    child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop within %.0fs; killing it", child.role, grace)
                    _kill(child)
                    child.process.wait()
        finally:
            self._stage = ()


def _kill(child: Child) -> None:
    """SIGKILL `child` and whatever it started (its session's process group)."""
    if child.process.returncode is None:
        with contextlib.suppress(ProcessLookupError):  # gone meanwhile
            os.killpg(child.process.pid, signal.SIGKILL)


DEFAULT_ACCOUNT_FILE = "default-account.json"
_DEFAULT_ACCOUNT_FIELDS = ("id", "secret_key", "publishable_key")


def write_default_account(data_dir: Path, account: dict[str, str]) -> None:
    """Keep the default test account's keys beside the data so every start can print them:
    whole or not at all (a crash part-way leaves the file as it was, never empty), and
    readable by its owner only."""
    written = AtomicFile.create(data_dir / DEFAULT_ACCOUNT_FILE, mode=0o600)
    try:
        json.dump(account, written.handle)
        written.commit()
    except BaseException:
        written.discard()
        raise


def read_default_account(data_dir: Path) -> dict[str, str] | None:
    """The saved default account, None before the first start; a `ConfigError` naming the file
    when it cannot be read or holds no account: creating another would leave the one the
    file names, and whatever was set up for it, behind without a word."""
    path = data_dir / DEFAULT_ACCOUNT_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(_unreadable_account(path, type(error).__name__)) from None
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(_unreadable_account(path, "it is not JSON")) from None
    if not (
        isinstance(loaded, dict)
        and all(isinstance(loaded.get(name), str) for name in _DEFAULT_ACCOUNT_FIELDS)
    ):
        raise ConfigError(_unreadable_account(path, "it holds no account id and keys"))
    return {name: loaded[name] for name in _DEFAULT_ACCOUNT_FIELDS}


def _unreadable_account(path: Path, why: str) -> str:
    return (
        f"the default account file {path} cannot be read ({why}): restore it, or remove it "
        "to have a new test account created"
    )


def install_stop_handlers(supervisor: Supervisor) -> None:
    """Stop in order on SIGTERM, SIGINT (Ctrl-C) and SIGHUP (the terminal running `remit serve`
    closed): Python's default for SIGTERM and SIGHUP ends the process at once, leaving the
    embedded PostgreSQL running with nobody to stop it. A SIGHUP ignored when the process
    started (`nohup remit serve &`) stays ignored, as Python leaves an ignored SIGINT: whoever
    started it asked for it to outlive the terminal."""
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, supervisor.request_stop)
    if signal.getsignal(signal.SIGHUP) != signal.SIG_IGN:
        signal.signal(signal.SIGHUP, supervisor.request_stop)
