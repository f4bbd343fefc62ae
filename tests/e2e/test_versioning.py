"""API versions end to end: the official SDK asking for versions per request, an account pinned
to an old version, and `remit accounts upgrade` moving the pin."""

import subprocess
import sys

import grpc
import httpx
import stripe

from remit_api.accounts.v1 import accounts_pb2, accounts_pb2_grpc
from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform
from versions import LATEST_VERSION

BEFORE_SOURCE_RENAMES = "2018-11-08"
"""The last version before 2019-02-11, when PaymentIntent statuses lost their source names."""


def _account_pinned_at(platform: RunningPlatform, version: str) -> TestAccount:
    with grpc.insecure_channel(platform.core.target) as channel:
        reply = accounts_pb2_grpc.AccountsServiceStub(channel).CreateAccount(
            accounts_pb2.CreateAccountRequest(default_currency="usd", api_version=version),
            timeout=10,
        )
    return TestAccount(reply.account.id, reply.secret_key, reply.publishable_key)


def test_the_same_payment_intent_has_three_shapes_at_three_versions(
    client: stripe.StripeClient,
) -> None:
    created = client.v1.payment_intents.create(params={"amount": 1500, "currency": "usd"})

    latest = client.v1.payment_intents.retrieve(created.id).to_dict()
    before_2022 = client.v1.payment_intents.retrieve(
        created.id, options={"stripe_version": "2022-08-01"}
    ).to_dict()
    in_2018 = client.v1.payment_intents.retrieve(
        created.id, options={"stripe_version": BEFORE_SOURCE_RENAMES}
    ).to_dict()

    assert latest["status"] == "requires_payment_method"
    assert not {"charges", "invoice", "allowed_source_types", "next_source_action"} & latest.keys()

    assert before_2022["status"] == "requires_payment_method"
    assert before_2022["invoice"] is None
    assert before_2022["charges"] == {
        "object": "list",
        "data": [],
        "has_more": False,
        "total_count": 0,
        "url": f"/v1/charges?payment_intent={created.id}",
    }
    assert {k: v for k, v in before_2022.items() if k not in ("charges", "invoice")} == latest

    assert in_2018["status"] == "requires_source"
    assert in_2018["allowed_source_types"] == latest["payment_method_types"]
    assert in_2018["next_source_action"] is None
    assert not {"payment_method_types", "next_action"} & in_2018.keys()


def test_an_account_pinned_before_2019_02_11_sees_source_statuses_on_create(
    platform: RunningPlatform,
) -> None:
    account = _account_pinned_at(platform, BEFORE_SOURCE_RENAMES)
    # Without a Stripe-Version header (stripe-python always sends one), the pin decides.
    response = httpx.post(
        f"{platform.api_base}/v1/payment_intents",
        data={"amount": "700", "currency": "usd"},
        auth=(account.secret_key, ""),
    )
    assert response.status_code == 200
    assert response.headers["stripe-version"] == BEFORE_SOURCE_RENAMES
    body = response.json()
    assert body["status"] == "requires_source"
    assert body["charges"]["total_count"] == 0


def test_remit_accounts_upgrade_moves_the_pin_forward_and_never_back(
    platform: RunningPlatform,
) -> None:
    account = _account_pinned_at(platform, BEFORE_SOURCE_RENAMES)

    def upgrade(version: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "remit", "accounts", "upgrade", account.id, version],
            env=platform.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    moved = upgrade(LATEST_VERSION)
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.strip() == f"{account.id}: {BEFORE_SOURCE_RENAMES} -> {LATEST_VERSION}"
    response = httpx.post(
        f"{platform.api_base}/v1/payment_intents",
        data={"amount": "700", "currency": "usd"},
        auth=(account.secret_key, ""),
    )
    assert response.headers["stripe-version"] == LATEST_VERSION
    assert response.json()["status"] == "requires_payment_method"

    back = upgrade(BEFORE_SOURCE_RENAMES)
    assert back.returncode == 1
    assert "back" in back.stderr
