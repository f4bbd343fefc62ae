"""The facade's per-account rate limits, on a platform whose write limit is set low."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import stripe

from tests.support.accounts import TestAccount, create_account
from tests.support.platform import RunningPlatform, running_platform
from tests.support.postgres import WorkerDatabases

pytestmark = [
    # One worker starts the module's platform, not both.
    pytest.mark.xdist_group("rate_limits"),
    pytest.mark.own_platform(reason="a platform with a low write limit"),
]

# One write every two seconds: however slow a loaded machine makes each request, the next
# comes before the bucket has refilled.
WRITES_PER_S = 0.5
MAX_TRIES = 10
AT_ONCE = 6


@pytest.fixture(scope="module")
def limited(databases: WorkerDatabases) -> Iterator[RunningPlatform]:
    with running_platform(databases, REMIT_RATE_LIMIT_WRITES_PER_S=str(WRITES_PER_S)) as running:
        yield running


def _create(platform: RunningPlatform, account: TestAccount) -> httpx.Response:
    return httpx.post(
        f"{platform.api_base}/v1/payment_intents",
        data={"amount": "1000", "currency": "usd"},
        headers={"Authorization": f"Bearer {account.secret_key}"},
    )


def test_writes_over_the_limit_get_a_429_in_stripes_shape_and_reads_still_pass(
    limited: RunningPlatform,
) -> None:
    account = create_account(limited.core, token=limited.internal_token)
    with ThreadPoolExecutor(AT_ONCE) as pool:
        answers = list(pool.map(lambda _: _create(limited, account), range(AT_ONCE)))
    # The burst the bucket holds passes; the rest come faster than it refills.
    statuses = {answer.status_code for answer in answers}
    assert statuses == {200, 429}
    refused = [a for a in answers if a.status_code == 429]
    error = refused[0].json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "rate_limit")
    assert refused[0].headers["request-id"].startswith("req_")
    # Refused writes wrote nothing; reads have a limit of their own.
    listed = httpx.get(
        f"{limited.api_base}/v1/payment_intents",
        params={"limit": "100"},
        headers={"Authorization": f"Bearer {account.secret_key}"},
    )
    assert listed.status_code == 200
    assert len(listed.json()["data"]) == len(answers) - len(refused)
    # Another account is not held back by this one.
    other = create_account(limited.core, token=limited.internal_token)
    assert _create(limited, other).status_code == 200


def test_the_sdk_raises_its_rate_limit_error(limited: RunningPlatform) -> None:
    account = create_account(limited.core, token=limited.internal_token)
    client = stripe.StripeClient(
        account.secret_key, base_addresses={"api": limited.api_base}, max_network_retries=0
    )
    refusal: stripe.RateLimitError | None = None
    for _ in range(MAX_TRIES):
        try:
            client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
        except stripe.RateLimitError as error:
            refusal = error
            break
    assert refusal is not None
    assert refusal.http_status == 429
    assert refusal.error is not None
    assert refusal.error.code == "rate_limit"


def test_a_publishable_keys_requests_do_not_spend_the_secret_keys(
    limited: RunningPlatform,
) -> None:
    """A publishable key is public: whoever copies it from a web page and floods with it is
    refused on its own budget, and the merchant's secret key goes on being served."""
    account = create_account(limited.core, token=limited.internal_token)

    def make_payment_method(_: int) -> int:
        return httpx.post(
            f"{limited.api_base}/v1/payment_methods",
            data={"type": "card", "card[token]": "tok_visa"},
            headers={"Authorization": f"Bearer {account.publishable_key}"},
        ).status_code

    with ThreadPoolExecutor(AT_ONCE) as pool:
        public = set(pool.map(make_payment_method, range(AT_ONCE)))
    assert public == {200, 429}
    assert _create(limited, account).status_code == 200
