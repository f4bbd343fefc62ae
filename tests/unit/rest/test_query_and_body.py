"""A form POST's query string is read with its body as one set of parameters, as Stripe reads
them: a hash's keys may come from either, and a name given in both is given twice."""

import pytest
from starlette.testclient import TestClient

from remit.core.jsonview import JsonObject
from remit.rest.app import Operation, build_app
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.forms import FormDecodeError, decode_json_body, decode_query_and_body, with_query
from remit.rest.params import Metadata, Schema, String
from tests.support.rest_facade import every_key_is_a_secret_key, faked_dependencies

KEY = "sk_test_" + "a" * 24
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_a_hash_takes_its_keys_from_both_the_query_and_the_body() -> None:
    assert decode_query_and_body("metadata[a]=1", b"metadata[b]=2&name=Ada") == {
        "metadata": {"a": "1", "b": "2"},
        "name": "Ada",
    }


def test_hashes_merge_at_every_depth() -> None:
    decoded = decode_query_and_body(
        "shipping[address][city]=Paris", b"shipping[address][line1]=2+Rue+Royale&shipping[name]=J"
    )
    assert decoded == {
        "shipping": {"address": {"city": "Paris", "line1": "2 Rue Royale"}, "name": "J"}
    }


@pytest.mark.parametrize(
    ("query", "body", "param"),
    [
        ("name=Ada", b"name=Bob", "name"),
        ("metadata[a]=1", b"metadata[a]=2", "metadata[a]"),
        ("metadata[a]=1", b"metadata[a]=1", "metadata[a]"),
    ],
)
def test_a_name_in_both_is_given_twice(query: str, body: bytes, param: str) -> None:
    with pytest.raises(FormDecodeError) as raised:
        decode_query_and_body(query, body)
    assert raised.value.param == param
    assert "more than once" in raised.value.message


def test_a_hash_in_one_and_a_value_in_the_other_conflict() -> None:
    with pytest.raises(FormDecodeError) as raised:
        decode_query_and_body("metadata=", b"metadata[a]=1")
    assert raised.value.param == "metadata"


def test_a_json_bodys_query_merges_with_it_as_a_forms_does() -> None:
    body = decode_json_body(b'{"metadata": {"b": "2"}, "name": "Ada"}')
    assert with_query("metadata[a]=1&description=x", body) == {
        "metadata": {"b": "2", "a": "1"},
        "name": "Ada",
        "description": "x",
    }


@pytest.mark.parametrize(
    ("query", "body", "param"),
    [
        ("name=Ada", b'{"name": "Bob"}', "name"),
        ("metadata[a]=1", b'{"metadata": {"a": "1"}}', "metadata[a]"),
        ("metadata[a]=1", b'{"metadata": null}', "metadata"),
    ],
)
def test_a_name_in_a_json_body_and_its_query_is_given_twice(
    query: str, body: bytes, param: str
) -> None:
    with pytest.raises(FormDecodeError) as raised:
        with_query(query, decode_json_body(body))
    assert raised.value.param == param


async def _echo(context: ApiContext, deps: Dependencies) -> JsonObject:
    metadata = context.params.get("metadata")
    assert isinstance(metadata, dict)
    return {
        "object": "customer",
        "id": "cus_1",
        "name": str(context.params.get("name")),
        "metadata": {str(k): str(v) for k, v in metadata.items()},
    }


@pytest.fixture
def client() -> TestClient:
    deps = faked_dependencies(every_key_is_a_secret_key)
    schema = Schema({"name": String(), "metadata": Metadata()})
    return TestClient(build_app(deps, [Operation("POST", "/v1/customers", schema, _echo)]))


def test_a_post_reads_metadata_from_its_query_and_its_body(client: TestClient) -> None:
    response = client.post(
        "/v1/customers?metadata[a]=1",
        content=b"metadata[b]=2&name=Ada",
        headers=FORM,
        auth=(KEY, ""),
    )
    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == {"a": "1", "b": "2"}


def test_a_post_with_the_same_metadata_key_in_its_query_and_body_is_a_400(
    client: TestClient,
) -> None:
    response = client.post(
        "/v1/customers?metadata[a]=1",
        content=b"metadata[a]=2&name=Ada",
        headers=FORM,
        auth=(KEY, ""),
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "metadata[a]")


def test_a_json_post_reads_metadata_from_its_query_too(client: TestClient) -> None:
    """Once, the query string of a JSON POST was dropped without a word."""
    response = client.post(
        "/v1/customers?metadata[a]=1",
        content=b'{"metadata": {"b": "2"}, "name": "Ada"}',
        headers={"Content-Type": "application/json"},
        auth=(KEY, ""),
    )
    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == {"a": "1", "b": "2"}
