"""Stripe's webhook signature: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`.

Each `v1` is HMAC-SHA256 over `"<t>.<raw body>"`, hex-encoded, keyed with the whole `whsec_...`
string as UTF-8 (no base64 decoding), which is exactly what `stripe.Webhook.construct_event`
checks. While a rolled secret is still valid, the header carries one `v1` per secret.
"""

import hashlib
import hmac
from collections.abc import Sequence

from remit.core.ids import random_token

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
_SECRET_RANDOM_LENGTH = 32


def generate_secret() -> str:
    return SECRET_PREFIX + random_token(_SECRET_RANDOM_LENGTH)


def compute_signature(payload: bytes, secret: str, timestamp: int) -> str:
    signed = str(timestamp).encode("ascii") + b"." + payload
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def signature_header(payload: bytes, secrets: Sequence[str], timestamp: int) -> str:
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    parts = [f"t={timestamp}"]
    parts += [f"v1={compute_signature(payload, secret, timestamp)}" for secret in secrets]
    return ",".join(parts)
