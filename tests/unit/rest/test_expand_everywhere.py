"""Every GET and POST operation takes `expand`, declared once by `Operation`, not by each
endpoint's schema (Stripe's DELETEs answer a stub and take none)."""

from remit.core.jsonview import JsonObject
from remit.rest.app import Operation
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.params import ExpandList, Schema, String
from remit.rest.routes import all_operations


async def _unused(_context: ApiContext, _deps: Dependencies) -> JsonObject:
    raise AssertionError("not called")


def test_every_get_and_post_operation_takes_expand() -> None:
    lacking = [
        f"{op.method} {op.path}"
        for op in all_operations()
        if op.method != "DELETE" and not isinstance(op.schema.fields.get("expand"), ExpandList)
    ]
    assert lacking == []


def test_an_operation_declared_without_expand_takes_it_and_keeps_its_own_fields() -> None:
    operation = Operation("GET", "/v1/things", Schema({"name": String()}), _unused)
    assert set(operation.schema.fields) == {"name", "expand"}
    assert operation.schema.parse({"expand": ["data.customer"]}) == {"expand": ["data.customer"]}


def test_a_delete_takes_no_expand() -> None:
    operation = Operation("DELETE", "/v1/things/{id}", Schema({}), _unused)
    assert "expand" not in operation.schema.fields
