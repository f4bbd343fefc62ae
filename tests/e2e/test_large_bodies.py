"""Bodies over the limit get a clear answer through the real HTTP stack, declared or sent in
chunks, and leave the facade serving: the API's 1 MiB (Stripe's invalid_request_error) and the
3-D Secure page's form (anyone may post to it). That no more than the limit is read is pinned by
tests/unit/rest/test_bodies.py, which counts the chunks read."""

from collections.abc import Iterator

import httpx

from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform

MIB = 1024 * 1024


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    yield b"amount=100&currency=usd&description="
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size


def test_an_api_body_over_1_mib_is_refused_in_stripes_shape(
    platform: RunningPlatform, account: TestAccount
) -> None:
    headers = {
        "Authorization": f"Bearer {account.secret_key}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    url = f"{platform.api_base}/v1/payment_intents"
    declared = httpx.post(url, content=b"a=" + b"x" * (2 * MIB), headers=headers, timeout=30)
    chunked = httpx.post(url, content=_chunks(8 * MIB), headers=headers, timeout=30)
    for response in (declared, chunked):
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert "larger than 1 MiB" in error["message"]
    # The facade is unharmed: a normal request right after succeeds.
    fine = httpx.post(url, data={"amount": "100", "currency": "usd"}, headers=headers, timeout=30)
    assert fine.status_code == 200, fine.text


def test_a_3d_secure_page_post_over_its_limit_is_refused(platform: RunningPlatform) -> None:
    url = f"{platform.api_base}/three_d_secure/acct_none/tdsc_none"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Forwarded-For": "203.0.113.77",
    }
    response = httpx.post(url, content=_chunks(8 * MIB), headers=headers, timeout=30)
    # Refused for its size before the challenge is looked up (there is none of that id).
    assert response.status_code == 400, response.text
    assert "The form is too large." in response.text
