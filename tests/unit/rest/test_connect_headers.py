"""`Stripe-Account` and `Stripe-Context` (Connect's headers) naming another account than the
key's are refused with Stripe's 403 once the client is authenticated, before anything is read
or written: remit has no Connect, and serving the request on the key's own account would move
money on the wrong one. Naming the key's own account, or nothing, they change nothing. The gRPC
side is faked: the handler and the version pinning record whether the request reached them."""

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
from remit_api.accounts.v1 import accounts_pb2
from versions import LATEST_VERSION

OWN_ACCOUNT = "acct_own"
OTHER_ACCOUNT = "acct_other"
KEY = "sk_test_" + "a" * 24
# A key whose account has made no request yet: its first one pins the account's API version,
# a write to the core, which a refused request must not make.
UNPINNED_KEY = "sk_test_" + "u" * 24
PUBLISHABLE_KEY = "pk_test_" + "p" * 24
WRONG_KEY = "sk_test_" + "b" * 24
CONNECT_HEADERS = ["Stripe-Account", "Stripe-Context"]


class _Accounts:
    def __init__(self) -> None:
        self.pinned: list[str] = []

    async def PinApiVersion(  # noqa: N802 (the stub's method name)
        self, request: accounts_pb2.PinApiVersionRequest, **_: Any
    ) -> accounts_pb2.PinApiVersionResponse:
        self.pinned.append(request.account_id)
        return accounts_pb2.PinApiVersionResponse(api_version=request.api_version)


class _Platform:
    def __init__(self) -> None:
        self.accounts = _Accounts()
        self.handled: list[str] = []

        async def lookup(key: str) -> Principal | None:
            kinds = {KEY: KeyKind.SECRET, UNPINNED_KEY: KeyKind.SECRET}
            kinds[PUBLISHABLE_KEY] = KeyKind.PUBLISHABLE
            if key not in kinds:
                return None
            version = None if key == UNPINNED_KEY else LATEST_VERSION
            return Principal(OWN_ACCOUNT, "key_1", kinds[key], False, version, False)

        async def create(context: ApiContext, deps: Dependencies) -> JsonObject:
            self.handled.append(context.principal.account_id)
            return {"object": "customer", "id": "cus_1", "name": str(context.params.get("name"))}

        unused = cast(Any, None)
        deps = Dependencies(
            core_channel=unused, accounts=cast(Any, self.accounts), payments=unused,
            authenticator=Authenticator(lookup), vault_channel=unused, vault=unused,
            webhooks=unused, ledger=unused, radar=unused,
        )  # fmt: skip
        operations = [
            Operation(
                "POST",
                "/v1/customers",
                Schema({"name": String()}),
                create,
                publishable_allowed=True,
                publishable_params=frozenset({"name"}),
            ),
            Operation("GET", "/v1/customers/{customer}", Schema({}), create),
        ]
        self.client = TestClient(build_app(deps, operations))


@pytest.fixture
def platform() -> _Platform:
    return _Platform()


def _post(
    platform: _Platform, key: str | None, headers: list[tuple[str, str]], path: str = ""
) -> Any:
    sent = list(headers)
    if key is not None:
        sent.append(("Authorization", f"Bearer {key}"))
    return platform.client.post(
        "/v1/customers" + path,
        content=b"name=Ada",
        headers=[("Content-Type", "application/x-www-form-urlencoded"), *sent],
    )


def _assert_refused(response: Any, header: str, named: str) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "Only Stripe Connect platforms can work with other accounts" in error["message"]
    assert "remit does not support Connect" in error["message"]
    assert f"the {header} header names '{named}'" in error["message"]
    assert "param" not in error
    assert "code" not in error
    assert response.headers["request-id"].startswith("req_")


@pytest.mark.parametrize("header", CONNECT_HEADERS)
@pytest.mark.parametrize("key", [KEY, UNPINNED_KEY, PUBLISHABLE_KEY])
def test_a_header_naming_another_account_is_refused_before_anything_is_done(
    platform: _Platform, header: str, key: str
) -> None:
    response = _post(platform, key, [(header, OTHER_ACCOUNT), ("Idempotency-Key", "order-1")])
    _assert_refused(response, header, OTHER_ACCOUNT)
    assert platform.handled == []
    assert platform.accounts.pinned == []
    # Echoed as on any other answer: the client can match the refusal to its key.
    assert response.headers["idempotency-key"] == "order-1"


@pytest.mark.parametrize("header", CONNECT_HEADERS)
def test_a_get_naming_another_account_is_refused_too(platform: _Platform, header: str) -> None:
    response = platform.client.get(
        "/v1/customers/cus_1", headers={"Authorization": f"Bearer {KEY}", header: OTHER_ACCOUNT}
    )
    _assert_refused(response, header, OTHER_ACCOUNT)
    assert platform.handled == []


@pytest.mark.parametrize("header", CONNECT_HEADERS)
@pytest.mark.parametrize("key", [None, WRONG_KEY])
def test_without_a_good_api_key_the_answer_is_still_the_401(
    platform: _Platform, header: str, key: str | None
) -> None:
    response = _post(platform, key, [(header, OTHER_ACCOUNT)])
    assert response.status_code == 401, response.text
    assert platform.handled == []


@pytest.mark.parametrize("header", CONNECT_HEADERS)
@pytest.mark.parametrize("key", [KEY, UNPINNED_KEY])
def test_a_header_naming_the_keys_own_account_is_served(
    platform: _Platform, header: str, key: str
) -> None:
    response = _post(platform, key, [(header, OWN_ACCOUNT)])
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Ada"
    assert platform.handled == [OWN_ACCOUNT]


# Empty, and whitespace alone: what a server trims to empty, and what reaches the app untrimmed.
NO_ACCOUNT = {"empty": "", "a space": " ", "a tab": "\t", "spaces and tabs": " \t  \t"}


@pytest.mark.parametrize("value", NO_ACCOUNT.values(), ids=NO_ACCOUNT.keys())
@pytest.mark.parametrize("header", CONNECT_HEADERS)
def test_an_empty_header_names_no_account_and_is_ignored(
    platform: _Platform, header: str, value: str
) -> None:
    response = _post(platform, KEY, [(header, value)])
    assert response.status_code == 200, response.text
    assert platform.handled == [OWN_ACCOUNT]


@pytest.mark.parametrize("value", NO_ACCOUNT.values(), ids=NO_ACCOUNT.keys())
def test_both_headers_naming_no_account_are_ignored(platform: _Platform, value: str) -> None:
    response = _post(platform, KEY, [("Stripe-Account", value), ("Stripe-Context", value)])
    assert response.status_code == 200, response.text
    assert platform.handled == [OWN_ACCOUNT]


@pytest.mark.parametrize("header", CONNECT_HEADERS)
def test_another_account_named_after_an_empty_copy_is_still_refused(
    platform: _Platform, header: str
) -> None:
    response = _post(platform, KEY, [(header, " "), (header, OTHER_ACCOUNT)])
    _assert_refused(response, header, OTHER_ACCOUNT)
    assert platform.handled == []


@pytest.mark.parametrize("header", CONNECT_HEADERS)
def test_an_account_is_read_without_the_whitespace_around_it(
    platform: _Platform, header: str
) -> None:
    served = _post(platform, KEY, [(header, f" {OWN_ACCOUNT}\t")])
    assert served.status_code == 200, served.text
    refused = _post(platform, KEY, [(header, f"\t{OTHER_ACCOUNT} ")])
    _assert_refused(refused, header, OTHER_ACCOUNT)
    assert platform.handled == [OWN_ACCOUNT]


@pytest.mark.parametrize("header", CONNECT_HEADERS)
def test_another_account_named_after_the_keys_own_is_still_refused(
    platform: _Platform, header: str
) -> None:
    response = _post(platform, KEY, [(header, OWN_ACCOUNT), (header, OTHER_ACCOUNT)])
    _assert_refused(response, header, OTHER_ACCOUNT)
    assert platform.handled == []


def test_a_context_path_through_the_keys_own_account_is_refused(platform: _Platform) -> None:
    """`Stripe-Context: acct_platform/acct_connected` acts on the connected account."""
    named = f"{OWN_ACCOUNT}/{OTHER_ACCOUNT}"
    response = _post(platform, KEY, [("Stripe-Context", named)])
    _assert_refused(response, "Stripe-Context", named)


def test_either_header_naming_another_account_refuses_the_request(platform: _Platform) -> None:
    response = _post(
        platform, KEY, [("Stripe-Account", OWN_ACCOUNT), ("Stripe-Context", OTHER_ACCOUNT)]
    )
    _assert_refused(response, "Stripe-Context", OTHER_ACCOUNT)
