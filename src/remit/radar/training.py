"""Labelled attempts, and the fit that turns them into the model's weights.

    python -m remit.radar.training --out src/remit/radar/weights.json

remit has no history of real fraud, so the labelled data is generated: legitimate and
fraudulent attempts drawn from distributions that encode what card fraud looks like (card
testing bursts, declines in a row, a buyer in another country than the card, new and prepaid
cards, failed CVC and postal checks). The attempts are turned into features by the same
`FEATURES` table the scorer uses, and fitted by Newton's method on the L2-regularised log loss:
small, exact and deterministic for a given seed. Replace `generate` with exported, labelled
production attempts (from closed reviews and disputes) to fit on real data.
"""

import argparse
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from remit.radar.model import FEATURES, WEIGHTS_PATH, Signals, features_of

DEFAULT_SEED = 20260101
DEFAULT_SAMPLES = 8000
FRAUD_SHARE = 0.1
L2 = 1e-3
ITERATIONS = 12


def _poisson(rng: random.Random, mean: float) -> int:
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _chance(rng: random.Random, probability: float) -> bool:
    return rng.random() < probability


@dataclass(frozen=True)
class Profile:
    """How one population behaves (rates and means per attempt)."""

    median_usd: float
    spread: float
    extra_card_attempts: float
    card_declines: float
    extra_customer_attempts: float
    extra_ip_attempts: float
    country_mismatch: float
    new_card: float
    prepaid: float
    cvc_failed: float
    postal_failed: float
    off_session: float
    authenticated: float
    # Attempts of the card earlier in the day beyond its hourly ones (default: twice the hourly
    # mean, as in a burst).
    extra_daily_attempts: float | None = None


LEGITIMATE = Profile(40, 1.0, 0.1, 0.1, 0.2, 0.2, 0.05, 0.3, 0.05, 0.01, 0.03, 0.2, 0.15)
# Regulars: customers who pay the same merchant several times a day with a card it has seen
# before (a coffee shop, a marketplace, top-ups). Without them the fit learns that a card's
# fourth attempt of a day is fraud on its own.
REGULAR = Profile(
    25, 1.0, 0.15, 0.05, 0.2, 0.3, 0.02, 0.02, 0.05, 0.01, 0.02, 0.1, 0.1, extra_daily_attempts=3.0
)
REGULAR_SHARE = 0.15
FRAUDULENT = Profile(120, 1.2, 0.8, 0.8, 0.6, 1.0, 0.35, 0.7, 0.15, 0.12, 0.15, 0.08, 0.03)


def _attempt(rng: random.Random, p: Profile) -> Signals:
    amount = math.exp(rng.gauss(math.log(p.median_usd), p.spread))
    hourly = 1 + _poisson(rng, p.extra_card_attempts)
    daily_extra = (
        2 * p.extra_card_attempts if p.extra_daily_attempts is None else p.extra_daily_attempts
    )
    declines = _poisson(rng, p.card_declines)
    has_customer, has_ip = _chance(rng, 0.5), _chance(rng, 0.6)
    return {
        "amount_in_usd": Decimal(f"{amount:.2f}"),
        "total_charges_per_card_number_hourly": hourly,
        "total_charges_per_card_number_daily": hourly + _poisson(rng, daily_extra),
        "declined_charges_per_card_number_daily": declines,
        "declined_charges_in_a_row_per_card_number": min(declines, _poisson(rng, declines)),
        "total_charges_per_customer_hourly": (1 + _poisson(rng, p.extra_customer_attempts))
        if has_customer
        else None,
        "total_charges_per_ip_address_hourly": (1 + _poisson(rng, p.extra_ip_attempts))
        if has_ip
        else None,
        "card_country": "US",
        "ip_country": ("GB" if _chance(rng, p.country_mismatch) else "US") if has_ip else None,
        "seconds_since_first_seen_card": 0 if _chance(rng, p.new_card) else 86_400 * 30,
        "card_funding": "prepaid" if _chance(rng, p.prepaid) else "credit",
        "cvc_check": "fail" if _chance(rng, p.cvc_failed) else "pass",
        "address_zip_check": "fail" if _chance(rng, p.postal_failed) else "pass",
        "is_off_session": _chance(rng, p.off_session),
        "is_3d_secure_authenticated": _chance(rng, p.authenticated),
    }


def generate(samples: int, seed: int) -> list[tuple[Signals, int]]:
    """`samples` labelled attempts (1 = fraudulent), the same for the same seed."""
    rng = random.Random(seed)
    data: list[tuple[Signals, int]] = []
    for _ in range(samples):
        fraud = _chance(rng, FRAUD_SHARE)
        # A regular is drawn only for a legitimate attempt.
        profile = FRAUDULENT if fraud else REGULAR if _chance(rng, REGULAR_SHARE) else LEGITIMATE
        data.append((_attempt(rng, profile), int(fraud)))
    return data


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (the systems here are 15 x 15)."""
    n = len(vector)
    rows = [[*row, vector[i]] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(rows[r][col]))
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for r in range(col + 1, n):
            factor = rows[r][col] / rows[col][col]
            for c in range(col, n + 1):
                rows[r][c] -= factor * rows[col][c]
    solution = [0.0] * n
    for r in range(n - 1, -1, -1):
        total = rows[r][n] - sum(rows[r][c] * solution[c] for c in range(r + 1, n))
        solution[r] = total / rows[r][r]
    return solution


def fit(data: Sequence[tuple[Signals, int]]) -> tuple[float, dict[str, float]]:
    """Bias and weights minimising the L2-regularised log loss (Newton's method)."""
    names = list(FEATURES)
    xs = [[1.0, *(features_of(signals)[name] for name in names)] for signals, _ in data]
    ys = [label for _, label in data]
    d = len(names) + 1
    beta = [0.0] * d
    for _ in range(ITERATIONS):
        gradient = [0.0] * d
        hessian = [[0.0] * d for _ in range(d)]
        for x, y in zip(xs, ys, strict=True):
            z = sum(b * v for b, v in zip(beta, x, strict=True))
            p = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
            residual, curvature = p - y, p * (1.0 - p)
            for i in range(d):
                if x[i]:
                    gradient[i] += residual * x[i]
                    row = hessian[i]
                    scaled = curvature * x[i]
                    for j in range(i, d):
                        if x[j]:
                            row[j] += scaled * x[j]
        for i in range(d):
            for j in range(i):
                hessian[i][j] = hessian[j][i]
            if i:  # the bias is not penalised
                gradient[i] += L2 * len(xs) * beta[i]
                hessian[i][i] += L2 * len(xs)
        step = _solve(hessian, gradient)
        beta = [b - s for b, s in zip(beta, step, strict=True)]
    return beta[0], dict(zip(names, beta[1:], strict=True))


def weights_document(samples: int, seed: int, version: str) -> dict[str, object]:
    bias, weights = fit(generate(samples, seed))
    return {
        "version": version,
        "trained_on": {"generator": "remit.radar.training", "samples": samples, "seed": seed},
        "bias": round(bias, 6),
        "weights": {name: round(value, 6) for name, value in weights.items()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fit Radar's risk model on generated data.")
    parser.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--version", default="radar-logistic-2")
    args = parser.parse_args(argv)
    document = weights_document(args.samples, args.seed, args.version)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.out} ({args.samples} samples, seed {args.seed})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
