"""Every answer says, in `Stripe-Version`, the version it renders at, errors included, and an
error is rendered as close to the caller's version as is known when it is raised: the header's
when valid; once the key is known, its account's pin when the header names none; before that
(a 401, an unknown path), the latest. An empty `Stripe-Version` names no version. The gRPC side
is faked: the handler records the version it was called at."""

from typing import Any, cast

import pytest
from starlette.testclient import TestClient

from remit.accounts.domain import KeyKind, Principal
from remit.core.jsonview import JsonObject
from remit.rest.app import Operation, build_app
from remit.rest.auth import Authenticator
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.params import Schema, String
from remit.rest.rate_limits import RateLimits
from remit_api.accounts.v1 import accounts_pb2
from versions import LATEST_VERSION

PINNED = "2018-11-08"
"""The version the keys' account is pinned to."""
ASKED = "2022-08-01"
"""A version a request asks for in its header."""
KEY = "sk_test_" + "a" * 24
PUBLISHABLE_KEY = "pk_test_" + "p" * 24
UNPINNED_KEY = "sk_test_" + "u" * 24
WRONG_KEY = "sk_test_" + "b" * 24
ACCOUNT = "acct_own"


class _Accounts:
    async def PinApiVersion(  # noqa: N802 (the stub's method name)
        self, request: accounts_pb2.PinApiVersionRequest, **_: Any
    ) -> accounts_pb2.PinApiVersionResponse:
        return accounts_pb2.PinApiVersionResponse(api_version=request.api_version)


class _Platform:
    def __init__(self, rate_limits: RateLimits | None = None) -> None:
        self.versions: list[str] = []

        async def lookup(key: str) -> Principal | None:
            kinds = {KEY: KeyKind.SECRET, PUBLISHABLE_KEY: KeyKind.PUBLISHABLE}
            kinds[UNPINNED_KEY] = KeyKind.SECRET
            if key not in kinds:
                return None
            pinned = None if key == UNPINNED_KEY else PINNED
            return Principal(ACCOUNT, "key_1", kinds[key], False, pinned, False)

        async def create(context: ApiContext, deps: Dependencies) -> JsonObject:
            self.versions.append(context.api_version)
            return {"object": "customer", "id": "cus_1", "name": str(context.params.get("name"))}

        unused = cast(Any, None)
        deps = Dependencies(
            core_channel=unused, accounts=cast(Any, _Accounts()), payments=unused,
            authenticator=Authenticator(lookup), vault_channel=unused, vault=unused,
            webhooks=unused, ledger=unused, radar=unused,
            rate_limits=rate_limits or RateLimits.of(0, 0),
        )  # fmt: skip
        operations = [Operation("POST", "/v1/customers", Schema({"name": String()}), create)]
        self.client = TestClient(build_app(deps, operations))

    def post(self, key: str, headers: dict[str, str] | None = None) -> Any:
        return self.client.post(
            "/v1/customers",
            content=b"name=Ada",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": f"Bearer {key}",
                **(headers or {}),
            },
        )


@pytest.fixture
def platform() -> _Platform:
    return _Platform()


def _answered_at(response: Any, status: int, version: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["stripe-version"] == version
    assert response.headers["request-id"].startswith("req_")


@pytest.mark.parametrize(
    ("sent", "version"), [({}, LATEST_VERSION), ({"Stripe-Version": ASKED}, ASKED)]
)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_an_unknown_path_answers_at_the_version_asked_for(
    platform: _Platform, method: str, sent: dict[str, str], version: str
) -> None:
    response = platform.client.request(method, "/v1/nowhere", headers=sent)
    _answered_at(response, 404, version)
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_a_path_served_with_another_method_answers_at_the_version_asked_for(
    platform: _Platform,
) -> None:
    response = platform.client.get("/v1/customers", headers={"Stripe-Version": ASKED})
    _answered_at(response, 404, ASKED)


def test_an_unknown_path_asking_for_an_unknown_version_answers_at_the_latest(
    platform: _Platform,
) -> None:
    response = platform.client.get("/v1/nowhere", headers={"Stripe-Version": "2099-01-01"})
    _answered_at(response, 404, LATEST_VERSION)


@pytest.mark.parametrize(
    ("sent", "version"), [({}, LATEST_VERSION), ({"Stripe-Version": ASKED}, ASKED)]
)
def test_a_401_answers_at_the_version_asked_for_as_no_account_is_known(
    platform: _Platform, sent: dict[str, str], version: str
) -> None:
    _answered_at(platform.post(WRONG_KEY, sent), 401, version)


_REFUSED_ONCE_AUTHENTICATED = {
    "publishable key": (PUBLISHABLE_KEY, {}, 403),
    "malformed Idempotency-Key": (KEY, {"Idempotency-Key": "k" * 300}, 400),
    "Stripe-Account of another account": (KEY, {"Stripe-Account": "acct_other"}, 403),
    "Stripe-Context of another account": (KEY, {"Stripe-Context": "acct_other"}, 403),
}


@pytest.mark.parametrize(
    ("key", "headers", "status"),
    list(_REFUSED_ONCE_AUTHENTICATED.values()),
    ids=list(_REFUSED_ONCE_AUTHENTICATED),
)
def test_a_refusal_once_authenticated_answers_at_the_accounts_version_when_none_is_asked(
    platform: _Platform, key: str, headers: dict[str, str], status: int
) -> None:
    _answered_at(platform.post(key, headers), status, PINNED)
    _answered_at(platform.post(key, {**headers, "Stripe-Version": ASKED}), status, ASKED)
    assert platform.versions == []


def test_a_refusal_of_an_unpinned_account_answers_at_the_latest(platform: _Platform) -> None:
    _answered_at(platform.post(UNPINNED_KEY, {"Stripe-Account": "acct_other"}), 403, LATEST_VERSION)


def test_a_rate_limited_request_answers_at_the_accounts_version_when_none_is_asked() -> None:
    platform = _Platform(RateLimits.of(0, 0.001))  # one write, then none for a long while
    _answered_at(platform.post(KEY), 200, PINNED)
    _answered_at(platform.post(KEY), 429, PINNED)
    _answered_at(platform.post(KEY, {"Stripe-Version": ASKED}), 429, ASKED)


def test_an_unknown_version_asked_for_is_refused_at_the_accounts_version(
    platform: _Platform,
) -> None:
    response = platform.post(KEY, {"Stripe-Version": "2099-01-01"})
    _answered_at(response, 400, PINNED)
    assert "Invalid Stripe-Version: '2099-01-01'" in response.json()["error"]["message"]


@pytest.mark.parametrize("empty", ["", " ", "\t  "])
def test_an_empty_stripe_version_names_no_version(platform: _Platform, empty: str) -> None:
    _answered_at(platform.post(KEY, {"Stripe-Version": empty}), 200, PINNED)
    _answered_at(platform.post(UNPINNED_KEY, {"Stripe-Version": empty}), 200, LATEST_VERSION)
    assert platform.versions == [PINNED, LATEST_VERSION]
    _answered_at(platform.post(WRONG_KEY, {"Stripe-Version": empty}), 401, LATEST_VERSION)


def test_a_stripe_version_is_read_without_the_whitespace_around_it(platform: _Platform) -> None:
    _answered_at(platform.post(KEY, {"Stripe-Version": f" {ASKED} "}), 200, ASKED)
    assert platform.versions == [ASKED]


@pytest.mark.parametrize("empty", ["", "  "])
def test_the_openapi_document_of_an_empty_stripe_version_is_the_latest(
    platform: _Platform, empty: str
) -> None:
    response = platform.client.get("/v1/openapi.json", headers={"Stripe-Version": empty})
    _answered_at(response, 200, LATEST_VERSION)
    assert response.json()["info"]["version"] == LATEST_VERSION


def test_an_unknown_openapi_version_is_refused_at_the_version_of_the_header(
    platform: _Platform,
) -> None:
    response = platform.client.get(
        "/v1/openapi.json?version=2099-01-01", headers={"Stripe-Version": ASKED}
    )
    _answered_at(response, 400, ASKED)
