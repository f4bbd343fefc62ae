"""Stripe's search endpoints remit does not serve answer Stripe's unrecognized-URL 404, not the
"No such payment_intent: 'search'" of the route of one object taking `search` for an id."""

import pytest
from starlette.testclient import TestClient

from remit.rest.app import build_app
from remit.rest.routes import all_operations
from tests.support.rest_facade import faked_dependencies


async def _nobody(key: str) -> None:
    return None


def _client() -> TestClient:
    deps = faked_dependencies(_nobody)
    return TestClient(build_app(deps, all_operations()))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/payment_intents/search"),
        ("GET", "/v1/charges/search"),
        ("GET", "/v1/customers/search"),
        ("POST", "/v1/payment_intents/search"),
        ("GET", "/v1/charges/ch_1/refunds/search"),
        ("GET", "/v1/radar/value_lists/search"),
    ],
)
def test_an_unserved_search_is_an_unrecognized_url(method: str, path: str) -> None:
    response = _client().request(method, path, params={"query": "status:'succeeded'"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(f"Unrecognized request URL ({method}: {path}).")


def test_an_object_by_id_is_still_routed_to_its_operation() -> None:
    """Unauthenticated here, so the operation's own 401, not the router's 404."""
    assert _client().get("/v1/payment_intents/pi_search").status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        "/v1/payment_intents/%0A/",  # a newline: past what the catch-all route matches
        "/v1/payment_intents/%2F%0A0",
        "/v1/payment_intents/pi_1/",  # a trailing slash: no redirect to the path without it
        "/v1/charges/",
    ],
)
def test_paths_no_route_matches_are_an_unrecognized_url(path: str) -> None:
    response = _client().get(path, follow_redirects=False)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["request-id"].startswith("req_")
    assert response.json()["error"]["message"].startswith("Unrecognized request URL (GET: ")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        # A browser's preflight of a path served is answered (remit.rest.cors); of another, not.
        ("OPTIONS", "/v1/nope"),
        ("OPTIONS", "/v1/payment_intents/search"),
        ("TRACE", "/v1/charges"),
        ("PATCH", "/v1/payment_intents"),
        ("PROPFIND", "/v1/payment_intents/pi_1"),
    ],
)
def test_any_method_on_a_path_it_is_not_served_for_is_an_unrecognized_url(
    method: str, path: str
) -> None:
    response = _client().request(method, path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["request-id"].startswith("req_")
    assert response.json()["error"]["message"].startswith(
        f"Unrecognized request URL ({method}: {path})."
    )
