"""Fault injection for the simulated acquirer, so callers can be tested against a bad network.

Configured only by flags or environment (never by RPC, so a caller cannot switch it off):

- latency: every affected call waits this long first;
- error: the call fails with UNAVAILABLE before anything happens;
- timeout: the call does nothing and sleeps until just past the caller's deadline (30 s when
  the caller set none), then fails with DEADLINE_EXCEEDED;
- lost response: the operation is done and committed, then the call fails with UNAVAILABLE,
  so the caller cannot tell it from an error and has to ask LookupOperation.

Each call draws once from a seeded generator and gets at most one of error, timeout or lost
response, so with a seed a sequence of calls always meets the same faults. Faults apply to
Authorize, Capture, Void and Refund; LookupOperation and GetSettlementReport, which recovery
and reconciliation depend on, are affected only when reads are included explicitly.
"""

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from remit.config import ConfigError

_SERVICE: Final = "/remit_api.acquirer.v1.AcquirerService/"
MUTATING_METHODS: Final = frozenset(
    _SERVICE + name for name in ("Authorize", "Capture", "Void", "Refund")
)
READ_METHODS: Final = frozenset(
    _SERVICE + name for name in ("LookupOperation", "GetSettlementReport")
)


@dataclass(frozen=True)
class FaultSetting:
    """One knob: its command-line flag, environment variable and help text."""

    flag: str
    env: str
    help: str
    is_switch: bool = False


LATENCY = FaultSetting(
    "--acquirer-latency-ms", "REMIT_ACQUIRER_LATENCY_MS",
    "added latency of every acquirer call, in milliseconds (default 0)",
)  # fmt: skip
ERROR_RATE = FaultSetting(
    "--acquirer-error-rate", "REMIT_ACQUIRER_ERROR_RATE",
    "fraction (0-1) of acquirer calls that fail with UNAVAILABLE before doing anything",
)  # fmt: skip
TIMEOUT_RATE = FaultSetting(
    "--acquirer-timeout-rate", "REMIT_ACQUIRER_TIMEOUT_RATE",
    "fraction (0-1) of acquirer calls that do nothing and outlast the caller's deadline",
)  # fmt: skip
LOST_RESPONSE_RATE = FaultSetting(
    "--acquirer-lost-response-rate", "REMIT_ACQUIRER_LOST_RESPONSE_RATE",
    "fraction (0-1) of acquirer calls that are processed and committed, then fail with "
    "UNAVAILABLE as if the response were lost",
)  # fmt: skip
SEED = FaultSetting(
    "--acquirer-fault-seed", "REMIT_ACQUIRER_FAULT_SEED",
    "seed of the fault generator, for repeatable runs (default: random)",
)  # fmt: skip
INCLUDE_READS = FaultSetting(
    "--acquirer-fault-reads", "REMIT_ACQUIRER_FAULT_READS",
    "apply the faults to LookupOperation and GetSettlementReport too",
    is_switch=True,
)  # fmt: skip
FAULT_SETTINGS: Final = (LATENCY, ERROR_RATE, TIMEOUT_RATE, LOST_RESPONSE_RATE, SEED, INCLUDE_READS)

FAULTS_HELP: Final = (
    "The simulated acquirer can inject faults into Authorize, Capture, Void and Refund: "
    "latency, UNAVAILABLE errors, timeouts past the caller's deadline, and lost responses "
    "(processed and committed, then UNAVAILABLE). Each flag has an environment variable: "
    + ", ".join(setting.env for setting in FAULT_SETTINGS)
    + ". Flags win over the environment. Each call meets at most one of error, timeout and "
    "lost response; their rates must sum to at most 1."
)


class Fault(Enum):
    NONE = "none"
    ERROR = "error"
    TIMEOUT = "timeout"
    LOST_RESPONSE = "lost_response"


@dataclass(frozen=True)
class FaultConfig:
    latency_ms: int = 0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    lost_response_rate: float = 0.0
    seed: int | None = None
    include_reads: bool = False

    def __post_init__(self) -> None:
        if self.latency_ms < 0:
            raise ConfigError(f"{LATENCY.env} must not be negative, got {self.latency_ms}")
        for setting, rate in (
            (ERROR_RATE, self.error_rate),
            (TIMEOUT_RATE, self.timeout_rate),
            (LOST_RESPONSE_RATE, self.lost_response_rate),
        ):
            if not 0.0 <= rate <= 1.0:
                raise ConfigError(f"{setting.env} must be between 0 and 1, got {rate}")
        if self.error_rate + self.timeout_rate + self.lost_response_rate > 1.0:
            raise ConfigError(
                f"{ERROR_RATE.env}, {TIMEOUT_RATE.env} and {LOST_RESPONSE_RATE.env} must sum "
                "to at most 1"
            )

    @property
    def active(self) -> bool:
        return self.latency_ms > 0 or (
            self.error_rate + self.timeout_rate + self.lost_response_rate > 0
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "FaultConfig":
        def raw(setting: FaultSetting) -> str | None:
            value = env.get(setting.env, "").strip()
            return value or None

        def number(setting: FaultSetting, parse: Callable[[str], Any], default: Any) -> Any:
            value = raw(setting)
            if value is None:
                return default
            try:
                return parse(value)
            except ValueError:
                raise ConfigError(f"{setting.env} must be a number, got {value!r}") from None

        reads = raw(INCLUDE_READS)
        if reads not in (None, "0", "1"):
            raise ConfigError(f"{INCLUDE_READS.env} must be 0 or 1, got {reads!r}")
        return cls(
            latency_ms=number(LATENCY, int, 0),
            error_rate=number(ERROR_RATE, float, 0.0),
            timeout_rate=number(TIMEOUT_RATE, float, 0.0),
            lost_response_rate=number(LOST_RESPONSE_RATE, float, 0.0),
            seed=number(SEED, int, None),
            include_reads=reads == "1",
        )


class FaultPlan:
    """Which fault each successive call meets: one seeded draw per call."""

    def __init__(self, config: FaultConfig) -> None:
        self._config = config
        self._random = random.Random(config.seed)

    def next_fault(self) -> Fault:
        draw = self._random.random()
        config = self._config
        if draw < config.error_rate:
            return Fault.ERROR
        if draw < config.error_rate + config.timeout_rate:
            return Fault.TIMEOUT
        if draw < config.error_rate + config.timeout_rate + config.lost_response_rate:
            return Fault.LOST_RESPONSE
        return Fault.NONE
