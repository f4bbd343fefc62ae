"""Stripe's limits are read from its spec as the REST facade names its parameters."""

import ast

from remit.devtools.stripe_string_limits import module_text, string_limits

SPEC = {
    "components": {
        "schemas": {
            "address": {
                "type": "object",
                "properties": {"line1": {"type": "string", "maxLength": 5000}},
            }
        }
    },
    "paths": {
        "/v1/things/{thing}": {
            "get": {
                "parameters": [
                    {"in": "path", "name": "thing", "schema": {"type": "string"}},
                    {"in": "query", "name": "cursor", "schema": {"type": "string"}},
                ]
            },
            "post": {
                "requestBody": {
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    # Unsettable: a string, or "" to clear it.
                                    "description": {
                                        "anyOf": [
                                            {"type": "string", "maxLength": 1000},
                                            {"type": "string", "enum": [""]},
                                        ]
                                    },
                                    "shipping": {
                                        "anyOf": [
                                            {
                                                "type": "object",
                                                "properties": {
                                                    "address": {
                                                        "$ref": "#/components/schemas/address"
                                                    }
                                                },
                                            },
                                            {"type": "string", "enum": [""]},
                                        ]
                                    },
                                    "expand": {
                                        "type": "array",
                                        "items": {"type": "string", "maxLength": 5000},
                                    },
                                    "kind": {"type": "string", "enum": ["a", "b"]},
                                    "amount": {"type": "integer"},
                                },
                            }
                        }
                    }
                }
            },
        }
    },
}


def test_every_string_parameter_is_named_as_on_the_wire_with_its_limit() -> None:
    assert string_limits(SPEC) == {
        "GET /v1/things/{thing}": {"cursor": None},
        "POST /v1/things/{thing}": {
            "description": 1000,
            "expand[]": 5000,
            "shipping[address][line1]": 5000,
        },
    }


def test_the_module_written_holds_the_table() -> None:
    table = string_limits(SPEC)
    module = ast.parse(module_text(table, "API version test"))
    assigned = [node for node in module.body if isinstance(node, ast.AnnAssign)]
    assert len(assigned) == 1
    assert ast.literal_eval(assigned[0].value) == table  # type: ignore[arg-type]
