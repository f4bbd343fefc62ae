"""The risk model: logistic regression over a dozen features, with its weights in a versioned
file (`weights.json`, written by `python -m remit.radar.training`).

Transparent by construction: a score is `99 * sigmoid(bias + sum(weight * feature))`, and each
feature's contribution is how many points the score would drop without it. The top ones travel
with every decision, so a merchant can see why a payment scored as it did.
"""

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Final

from remit.radar.domain import (
    HINT_BANDS,
    MAX_RISK_SCORE,
    Contribution,
    Score,
    risk_level_of,
)

WEIGHTS_PATH: Final = Path(__file__).with_name("weights.json")
TOP_SIGNALS: Final = 4

Signals = Mapping[str, object]


def _number(signals: Signals, name: str) -> float:
    value = signals.get(name)
    if isinstance(value, bool) or value is None:
        return 0.0
    if isinstance(value, int | float | Decimal):
        return float(value)
    return 0.0


def _previous(signals: Signals, name: str, cap: float) -> float:
    """A velocity count without the attempt itself, capped so one signal cannot run away."""
    return min(max(_number(signals, name) - 1.0, 0.0), cap)


def _differs(signals: Signals, a: str, b: str) -> float:
    first, second = signals.get(a), signals.get(b)
    if not isinstance(first, str) or not isinstance(second, str) or not first or not second:
        return 0.0
    return 1.0 if first.upper() != second.upper() else 0.0


def _is(signals: Signals, name: str, wanted: object) -> float:
    return 1.0 if signals.get(name) == wanted else 0.0


def _new(signals: Signals, name: str, within_s: float) -> float:
    value = signals.get(name)
    return 1.0 if isinstance(value, int) and value < within_s else 0.0


# Feature name -> how to compute it from the signals. The training script and the scorer use
# this same table, so a feature means the same thing in both.
FEATURES: Final[dict[str, Callable[[Signals], float]]] = {
    "amount_log_usd": lambda s: math.log10(1.0 + _number(s, "amount_in_usd")),
    "card_attempts_hourly": lambda s: _previous(s, "total_charges_per_card_number_hourly", 20),
    "card_attempts_daily": lambda s: _previous(s, "total_charges_per_card_number_daily", 50),
    "card_declines_daily": lambda s: min(_number(s, "declined_charges_per_card_number_daily"), 20),
    "card_declines_in_a_row": lambda s: min(
        _number(s, "declined_charges_in_a_row_per_card_number"), 10
    ),
    "customer_attempts_hourly": lambda s: _previous(s, "total_charges_per_customer_hourly", 20),
    "ip_attempts_hourly": lambda s: _previous(s, "total_charges_per_ip_address_hourly", 20),
    "ip_country_mismatch": lambda s: _differs(s, "card_country", "ip_country"),
    "card_new_to_account": lambda s: _new(s, "seconds_since_first_seen_card", 3600),
    "prepaid_card": lambda s: _is(s, "card_funding", "prepaid"),
    "cvc_check_failed": lambda s: _is(s, "cvc_check", "fail"),
    "postal_check_failed": lambda s: _is(s, "address_zip_check", "fail"),
    "off_session": lambda s: _is(s, "is_off_session", True),
    "three_d_secure_authenticated": lambda s: _is(s, "is_3d_secure_authenticated", True),
}


@dataclass(frozen=True)
class Weights:
    version: str
    bias: float
    weights: Mapping[str, float]

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> "Weights":
        raw = data.get("weights")
        if not isinstance(raw, dict) or "bias" not in data:
            raise ValueError("a weights file has a bias and a weights object")
        unknown = set(raw) - set(FEATURES)
        if unknown:
            raise ValueError(f"weights for unknown features: {sorted(unknown)}")
        return cls(
            version=str(data.get("version")),
            bias=_finite("bias", data["bias"]),
            weights={name: _finite(name, raw.get(name, 0.0)) for name in FEATURES},
        )


def _finite(name: str, value: object) -> float:
    """A weight as a float. JSON as Python reads it may hold NaN or Infinity: loaded, such a
    weight would make every score fail (or every payment score 0 or 99), so it is refused
    when the weights are loaded, as the core starts."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"the weight of {name} is not a number: {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"the weight of {name} is not a finite number: {value!r}")
    return float(value)


def load_weights(path: Path = WEIGHTS_PATH) -> Weights:
    """The weights in `path`; ValueError naming the file and what is wrong with it."""
    try:
        return Weights.from_json(json.loads(path.read_text()))
    except ValueError as error:
        raise ValueError(f"Radar model weights {path}: {error}") from None


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _points(z: float) -> float:
    return 99.0 * _sigmoid(z)


def features_of(signals: Signals) -> dict[str, float]:
    return {name: compute(signals) for name, compute in FEATURES.items()}


def score(signals: Signals, weights: Weights, hint: str | None = None) -> Score:
    """The risk score of an attempt, its level, and the signals that moved it most."""
    values = features_of(signals)
    z = weights.bias + sum(weights.weights[name] * value for name, value in values.items())
    points = _points(z)
    contributions = [
        Contribution(name, points - _points(z - weights.weights[name] * value), _shown(value))
        for name, value in values.items()
        if value and weights.weights[name]
    ]
    risk_score = min(MAX_RISK_SCORE, int(points))
    band = HINT_BANDS.get(hint or "")
    if band is not None:
        floor, ceiling = band
        held = min(max(risk_score, floor), ceiling)
        if held != risk_score:
            contributions.append(
                Contribution("network_risk_hint", float(held - risk_score), hint or "")
            )
            risk_score = held
    contributions.sort(key=lambda c: abs(c.points), reverse=True)
    return Score(
        risk_score=risk_score,
        risk_level=risk_level_of(risk_score),
        top_signals=tuple(contributions[:TOP_SIGNALS]),
        model_version=weights.version,
    )


def _shown(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.3f}"
