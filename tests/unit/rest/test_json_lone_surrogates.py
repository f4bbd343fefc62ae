"""A JSON body may escape half of a surrogate pair alone (`"\\ud800"`), which decodes to no
text: the facade refuses it as it refuses a form body's bytes that are not UTF-8, a 400 naming
the parameter, rather than failing (a 500 and a logged traceback quoting the whole value, card
number included) where it builds the request to the core or the vault. The gRPC side is
faked: nothing here gets as far as it."""

import logging

import pytest
from starlette.testclient import TestClient

from remit.accounts.domain import KeyKind, Principal
from remit.rest.app import build_app
from remit.rest.routes import all_operations
from tests.support.rest_facade import faked_dependencies
from versions import LATEST_VERSION

SECRET_KEY = "sk_test_" + "a" * 24
PUBLISHABLE_KEY = "pk_test_" + "a" * 24
CARD = '"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"'


@pytest.fixture
def client() -> TestClient:
    async def lookup(key: str) -> Principal | None:
        kind = KeyKind.PUBLISHABLE if key.startswith("pk_") else KeyKind.SECRET
        return Principal("acct_1", "key_1", kind, False, LATEST_VERSION, True)

    return TestClient(build_app(faked_dependencies(lookup), all_operations()))


def _refusal(client: TestClient, path: str, body: str, key: str) -> dict[str, str]:
    response = client.post(
        path,
        content=body.encode(),
        headers={"Content-Type": "application/json"},
        auth=(key, ""),
    )
    assert response.status_code == 400, response.text
    assert "4242" not in response.text
    error: dict[str, str] = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    return error


@pytest.mark.parametrize(
    ("card", "param"),
    [
        (CARD.replace('242"', '242\\ud800"'), "card[number]"),
        (CARD.replace('"123"', '"12\\ud800"'), "card[cvc]"),
        (CARD.replace("12,", '"1\\udc80",', 1), "card[exp_month]"),
        (CARD + ', "address_line1": "\\udfff"', "card[address_line1]"),
    ],
)
@pytest.mark.parametrize("key", [PUBLISHABLE_KEY, SECRET_KEY])
def test_a_card_field_holding_a_lone_surrogate_is_refused_by_name(
    client: TestClient, caplog: pytest.LogCaptureFixture, card: str, param: str, key: str
) -> None:
    with caplog.at_level(logging.ERROR):
        error = _refusal(client, "/v1/tokens", f'{{"card": {{{card}}}}}', key)
    assert (error["message"], error["param"]) == (f"Invalid UTF-8 in the value of {param}.", param)
    assert not caplog.records


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ('{"description": "a\\udc80"}', "description"),
        ('{"metadata": {"order": "\\ud800"}}', "metadata[order]"),
        ('{"preferred_locales": ["en", "\\ud800"]}', "preferred_locales[1]"),
    ],
)
def test_a_value_holding_a_lone_surrogate_is_refused_by_name(
    client: TestClient, caplog: pytest.LogCaptureFixture, body: str, param: str
) -> None:
    with caplog.at_level(logging.ERROR):
        error = _refusal(client, "/v1/customers", body, SECRET_KEY)
    assert (error["message"], error["param"]) == (f"Invalid UTF-8 in the value of {param}.", param)
    assert not caplog.records


@pytest.mark.parametrize(
    "body",
    [
        '{"descr\\ud800iption": "x"}',
        '{"metadata": {"order\\udc80": "6735"}}',
        '{"metadata": {"k\\ud800": "v", "k\\ud800": "w"}}',
    ],
)
def test_a_name_holding_a_lone_surrogate_is_refused(
    client: TestClient, caplog: pytest.LogCaptureFixture, body: str
) -> None:
    with caplog.at_level(logging.ERROR):
        error = _refusal(client, "/v1/customers", body, SECRET_KEY)
    assert error["message"] == "Invalid UTF-8 in a name."
    assert "param" not in error
    assert not caplog.records
