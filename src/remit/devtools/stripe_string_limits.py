"""Write Stripe's `maxLength` for every string parameter of an OpenAPI document as a Python
module, which the tests hold the REST facade's parameter schemas to.

remit reads no Stripe document when it runs: its limits are its own, declared with each
parameter (`remit.rest.params.String`). This tool turns Stripe's spec into a table the tests
keep beside them (`tests/support/stripe_string_limits.py`), so that a limit that drifts from
Stripe's fails a test instead of surprising a client.

    python -m remit.devtools.stripe_string_limits stripe-openapi.json \
        tests/support/stripe_string_limits.py

Parameters are named as Stripe names them on the wire (`shipping[address][line1]`), with `[]`
for the items of an array (`expand[]`). A string whose schema gives no `maxLength` maps to None.
"""

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final, TypeAlias

JsonObject: TypeAlias = Mapping[str, object]

_METHODS: Final = ("get", "post", "delete")
_FORM: Final = "application/x-www-form-urlencoded"
# Deeper than any parameter the form decoder accepts (remit.rest.forms.MAX_DEPTH).
_MAX_DEPTH: Final = 6


def string_limits(spec: JsonObject) -> dict[str, dict[str, int | None]]:
    """For each operation (`POST /v1/payment_intents`), its string parameters' `maxLength`."""
    schemas = _mapping(_mapping(spec.get("components")).get("schemas"))
    table: dict[str, dict[str, int | None]] = {}
    for path, item in sorted(_mapping(spec.get("paths")).items()):
        for method in _METHODS:
            operation = _mapping(_mapping(item).get(method))
            if not operation:
                continue
            limits: dict[str, int | None] = {}
            for parameter in _list(operation.get("parameters")):
                parameter = _mapping(parameter)
                if parameter.get("in") == "query":
                    name = str(parameter["name"])
                    limits.update(_leaves(_mapping(parameter.get("schema")), name, schemas, 0))
            body = _mapping(
                _mapping(_mapping(operation.get("requestBody")).get("content")).get(_FORM)
            ).get("schema")
            properties = _mapping(_resolved(_mapping(body), schemas).get("properties"))
            for name, schema in properties.items():
                limits.update(_leaves(_mapping(schema), name, schemas, 0))
            table[f"{method.upper()} {path}"] = dict(sorted(limits.items()))
    return table


def _leaves(
    schema: JsonObject, name: str, schemas: JsonObject, depth: int
) -> Iterator[tuple[str, int | None]]:
    """The string parameters `schema` holds under `name`: itself, its properties, its items."""
    if depth > _MAX_DEPTH:
        return
    schema = _resolved(schema, schemas)
    variants = _list(schema.get("anyOf")) or [schema]
    longest: int | None = None
    is_string = False
    for variant in (_resolved(_mapping(v), schemas) for v in variants):
        kind = variant.get("type")
        if kind == "string" and "enum" not in variant:
            is_string = True
            limit = variant.get("maxLength")
            if isinstance(limit, int):
                longest = limit if longest is None else max(longest, limit)
        elif kind == "object":
            for key, nested in _mapping(variant.get("properties")).items():
                yield from _leaves(_mapping(nested), f"{name}[{key}]", schemas, depth + 1)
        elif kind == "array":
            yield from _leaves(_mapping(variant.get("items")), f"{name}[]", schemas, depth + 1)
    if is_string:
        yield name, longest


def _resolved(schema: JsonObject, schemas: JsonObject) -> JsonObject:
    while "$ref" in schema:
        schema = _mapping(schemas.get(str(schema["$ref"]).rpartition("/")[2]))
    return schema


def _mapping(value: object) -> JsonObject:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def module_text(table: Mapping[str, Mapping[str, int | None]], source: str) -> str:
    lines = [
        '"""Stripe\'s `maxLength` for every string parameter of the endpoints of its OpenAPI spec',
        f"({source}), read by the tests that hold the REST facade's parameter schemas to",
        "Stripe's limits. Written by `python -m remit.devtools.stripe_string_limits`; do not edit.",
        '"""',
        "",
        "from typing import Final",
        "",
        "STRIPE_STRING_LIMITS: Final[dict[str, dict[str, int | None]]] = {",
    ]
    for operation, limits in table.items():
        if not limits:
            lines.append(f"    {json.dumps(operation)}: {{}},")
            continue
        lines.append(f"    {json.dumps(operation)}: {{")
        lines += [f"        {json.dumps(name)}: {limit!r}," for name, limit in limits.items()]
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("spec", type=Path, help="Stripe's OpenAPI document (JSON)")
    parser.add_argument("out", type=Path, help="the Python module to write")
    options = parser.parse_args(argv)
    spec = json.loads(options.spec.read_text(encoding="utf-8"))
    info = _mapping(spec.get("info"))
    source = f"API version {info.get('version', 'unknown')}"
    options.out.write_text(module_text(string_limits(spec), source), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
