"""Cost of the versioning render step: a PaymentIntent with an expanded charge (and, for old
versions, its charges list and the charge's refunds, already gathered), rendered at the latest
version as the facade renders it there (made without the fields kept off the wire, so the
engine returns its input), at the latest for a body that may hold them (one the core made: the
engine walks it to take them out), and at the oldest (every response change applies), in
microseconds per render, and their ratio. Pure CPU, no I/O."""

import time
from collections.abc import Callable

from bench.result import Figure
from remit.core.jsonview import JsonObject, internal_fields_left_out, to_json
from remit.versioning import load, render
from tests.support import resources
from versions import KNOWN_VERSIONS, LATEST_VERSION

OLDEST = KNOWN_VERSIONS[-1]
ROUNDS = 5
MIN_ROUND_S = 0.3


def _per_call_us(call: Callable[[], object]) -> float:
    """The best of several timed rounds, each long enough to swamp the timer's resolution."""
    best = float("inf")
    for _ in range(ROUNDS):
        count, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < MIN_ROUND_S:
            for _ in range(100):
                call()
            count += 100
        best = min(best, elapsed / count * 1e6)
    return best


def run() -> list[Figure]:
    load()
    intent: JsonObject = to_json(resources.payment_intent())
    intent["latest_charge"] = to_json(resources.charge())
    with internal_fields_left_out():
        public: JsonObject = to_json(resources.payment_intent())
        public["latest_charge"] = to_json(resources.charge())
    related = resources.related_lists()
    latest_us = _per_call_us(
        lambda: render(public, LATEST_VERSION, related, holds_internal_fields=False)
    )
    walked_us = _per_call_us(lambda: render(intent, LATEST_VERSION, related))
    oldest_us = _per_call_us(lambda: render(intent, OLDEST, related))
    # For scale: building the same latest-schema JSON from the messages, which every request pays.
    intent_message, charge_message = resources.payment_intent(), resources.charge()
    to_json_us = _per_call_us(lambda: (to_json(intent_message), to_json(charge_message)))
    name = "versioning"
    return [
        Figure(name, "to_json PI + charge (for scale)", to_json_us, "us"),
        Figure(name, f"render PI + expanded charge at {LATEST_VERSION}", latest_us, "us"),
        Figure(name, f"the same, walked for internal fields, at {LATEST_VERSION}", walked_us, "us"),
        Figure(name, f"render PI + expanded charge at {OLDEST}", oldest_us, "us"),
        Figure(name, "oldest / latest", oldest_us / latest_us, "x"),
    ]
