"""Decode Stripe-style request parameters into nested dicts and lists.

Stripe's v1 API takes `application/x-www-form-urlencoded` bodies (and query strings) whose keys
carry structure in brackets: `metadata[order]=6735`, `shipping[address][city]=Paris`,
`expand[]=customer` (curl and the docs) or `expand[0]=customer` (stripe-python always indexes).
`decode_form` turns such input into `FormValue`s; `decode_json_body` turns a JSON object into the
same shape so one set of validators (`remit.rest.params`) serves both.

The decoder knows no schema, so it cannot tell an array from a map whose keys happen to be
numbers (`metadata[2024]=budget` is a valid map). It therefore builds a list only when a
container's keys are exactly `0..n-1`; any other numeric keys stay a dict, and the schema decides:
array fields reject them as an invalid array, map fields (metadata) accept them.
"""

import json
import re
from typing import Final, NoReturn, TypeAlias
from urllib.parse import unquote_to_bytes

from remit.core.text_limits import cut_short

FormValue: TypeAlias = str | list["FormValue"] | dict[str, "FormValue"]


class Appended(list[FormValue]):
    """Values given as `name[]=value`. An array field reads them like any list; a map field
    (metadata) refuses them, because to a map `[]` is an empty key (stripe-python encodes
    `metadata={"": "v"}` that way), not an index."""


MAX_BODY_BYTES: Final = 1024 * 1024
MAX_KEYS: Final = 1000
MAX_DEPTH: Final = 5
"""The most bracket segments a key may have: `a[1][2][3][4][5]` is the deepest allowed."""

_KEY = re.compile(r"(?P<name>[^\[\]]+)(?P<segments>(?:\[[^\[\]]*\])*)")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_PREVIEW_LENGTH: Final = 100
# Half of a UTF-16 surrogate pair, alone: what a JSON `\ud800` escape without its other half
# decodes to. Such a string is no text (UTF-8 cannot encode it, so nothing downstream can
# carry it: the protobuf request to the core fails to build), and the form path never yields
# one, refusing the bytes that would encode it as invalid UTF-8.
_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")


class FormDecodeError(ValueError):
    """The request parameters could not be decoded. `param` names the offending key if known."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


# An empty segment (`[]`) is represented by None: "append to this array".
_Path: TypeAlias = tuple[str, tuple[str | None, ...]]


class _Container:
    """A node under construction: either named/indexed children or `[]`-appended values."""

    __slots__ = ("appended", "children", "param")

    def __init__(self, param: str) -> None:
        self.param = param
        self.children: dict[str, _Container | str] = {}
        self.appended: list[str] = []


def decode_form(raw: bytes | str) -> dict[str, FormValue]:
    """Decode a form-encoded body or query string (without the leading `?`)."""
    return _decode_together([raw])


def decode_query_and_body(query: bytes | str, body: bytes) -> dict[str, FormValue]:
    """A POST's parameters, from its query string and its form body: Stripe reads both as one
    set of parameters. So a hash's keys may come from either (`metadata[a]` in the query,
    `metadata[b]` in the body, as a client adding to a URL it was given does), and a name
    given in both is given twice, refused as it is within one form."""
    return _decode_together([query, body])


def with_query(query: bytes | str, body: dict[str, FormValue]) -> dict[str, FormValue]:
    """A JSON body's parameters with its query string's, as `decode_query_and_body` reads a
    form body's: hashes merge key by key, and a name given in both is given twice."""
    merged = dict(body)
    _merge_into(merged, decode_form(query), parent=None)
    return merged


def _merge_into(
    target: dict[str, FormValue], extra: dict[str, FormValue], parent: str | None
) -> None:
    for key, value in extra.items():
        param = key if parent is None else f"{parent}[{key}]"
        present = target.get(key)
        if present is None:
            target[key] = value
        elif isinstance(present, dict) and isinstance(value, dict):
            target[key] = inner = dict(present)
            _merge_into(inner, value, param)
        elif isinstance(present, dict) or isinstance(value, dict):
            _conflict(param)
        else:
            raise FormDecodeError(f"Received the parameter {param} more than once.", param)


def _decode_together(parts: list[bytes | str]) -> dict[str, FormValue]:
    pairs: list[tuple[str, str]] = []
    for raw in parts:
        data = _to_bytes(raw)
        if len(data) > MAX_BODY_BYTES:
            raise FormDecodeError(f"The request is larger than {MAX_BODY_BYTES} bytes.")
        # One count for all the parts: the query adds no parameters past the bound.
        _decode_pairs_into(pairs, data)
    root = _Container(param="")
    for key, value in pairs:
        _insert(root, _parse_key(key), value)
    return {name: _finish(child) for name, child in root.children.items()}


def decode_json_body(raw: bytes) -> dict[str, FormValue]:
    """Decode a JSON object body into the same shape `decode_form` produces.

    Numbers keep their literal text (`12`, `1.5`), booleans become `"true"`/`"false"` and null
    becomes `""` (unset), so the form validators apply unchanged.
    """
    if len(raw) > MAX_BODY_BYTES:
        raise FormDecodeError(f"The request is larger than {MAX_BODY_BYTES} bytes.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormDecodeError("The request body is not valid UTF-8.") from None
    document = _load_json(text)
    if not isinstance(document, dict):
        raise FormDecodeError("The JSON request body must be an object.")
    counter = _KeyCounter()
    return {
        _json_key(key, parent=None): _from_json(value, key, 0, counter)
        for key, value in document.items()
    }


def _to_bytes(raw: bytes | str) -> bytes:
    if isinstance(raw, bytes):
        return raw
    try:
        return raw.encode("utf-8")
    except UnicodeEncodeError:
        raise FormDecodeError("The request is not valid UTF-8.") from None


def _decode_pairs_into(pairs: list[tuple[str, str]], data: bytes) -> None:
    for chunk in data.split(b"&"):
        if not chunk:
            continue
        if len(pairs) == MAX_KEYS:
            raise FormDecodeError(f"Too many parameters: at most {MAX_KEYS} are allowed.")
        raw_key, _, raw_value = chunk.partition(b"=")
        key = _unescape(raw_key, param=None)
        pairs.append((key, _unescape(raw_value, param=key)))


def _unescape(raw: bytes, param: str | None) -> str:
    if _BAD_PERCENT.search(raw):
        where = f" in the value of {_preview(param)}" if param is not None else ""
        raise FormDecodeError(f"Invalid percent-encoding{where}.", _preview_or_none(param))
    try:
        text = unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        where = f" in the value of {_preview(param)}" if param is not None else ""
        raise FormDecodeError(f"Invalid UTF-8{where}.", _preview_or_none(param)) from None
    return refuse_nul(text, param)


def refuse_nul(text: str, param: str | None) -> str:
    """`text`, unless it holds a NUL character, which no stored text can (PostgreSQL refuses
    it), so a request carrying one is refused here rather than failing where it is stored."""
    if "\x00" in text:
        where = f" in the value of {_preview(param)}" if param is not None else " in a name"
        raise FormDecodeError(
            f"Invalid character{where}: NUL (%00) is not allowed.", _preview_or_none(param)
        )
    return text


def _parse_key(key: str) -> _Path:
    if not key:
        raise FormDecodeError("A parameter has an empty name.")
    match = _KEY.fullmatch(key)
    if match is None:
        raise FormDecodeError(
            f"Invalid parameter name {_preview(key)}: brackets are unbalanced or misplaced.",
            _preview(key),
        )
    segments = tuple(_SEGMENT.findall(match["segments"]))
    if len(segments) > MAX_DEPTH:
        raise FormDecodeError(
            f"Parameter {_preview(key)} is nested more than {MAX_DEPTH} levels deep.",
            _preview(key),
        )
    if "" in segments[:-1]:
        raise FormDecodeError(
            f"Invalid parameter name {_preview(key)}: `[]` may only end a name; "
            "index arrays of objects explicitly, as in items[0][price].",
            _preview(key),
        )
    return match["name"], tuple(segment or None for segment in segments)


def _insert(root: _Container, path: _Path, value: str) -> None:
    name, segments = path
    container, key = root, name
    for segment in segments:
        container = _child_container(container, key)
        if segment is None:
            _append(container, value)
            return
        key = segment
    _set_scalar(container, key, value)


def _child_container(parent: _Container, key: str) -> _Container:
    param = _child_param(parent.param, key)
    _refuse_mixing(parent)
    existing = parent.children.get(key)
    if existing is None:
        created = _Container(param)
        parent.children[key] = created
        return created
    if isinstance(existing, str):
        _conflict(param)
    return existing


def _append(container: _Container, value: str) -> None:
    if container.children:
        _mixing(container.param)
    container.appended.append(value)


def _set_scalar(container: _Container, key: str, value: str) -> None:
    param = _child_param(container.param, key)
    _refuse_mixing(container)
    existing = container.children.get(key)
    if isinstance(existing, str):
        raise FormDecodeError(f"Received the parameter {param} more than once.", param)
    if existing is not None:
        _conflict(param)
    container.children[key] = value


def _refuse_mixing(container: _Container) -> None:
    if container.appended:
        _mixing(container.param)


def _mixing(param: str) -> NoReturn:
    raise FormDecodeError(
        f"Invalid array: {param} mixes `{param}[]` with named or indexed keys.", param
    )


def _conflict(param: str) -> NoReturn:
    raise FormDecodeError(
        f"Parameter {param} was given both as a single value and as an object or array.", param
    )


def _finish(node: _Container | str) -> FormValue:
    if isinstance(node, str):
        return node
    if node.appended:
        return Appended(node.appended)
    children = {key: _finish(child) for key, child in node.children.items()}
    if _is_dense_index(children):
        return [children[str(index)] for index in range(len(children))]
    return children


def _is_dense_index(keys: dict[str, FormValue]) -> bool:
    # str(index) is canonical, so "01" or "+1" never count as indexes.
    return bool(keys) and keys.keys() == {str(index) for index in range(len(keys))}


def _child_param(parent: str, key: str) -> str:
    return f"{parent}[{key}]" if parent else key


def _preview(text: str | None) -> str:
    text = text or ""
    return cut_short(text, _PREVIEW_LENGTH)


def _preview_or_none(text: str | None) -> str | None:
    return None if text is None else _preview(text)


# --- JSON ---------------------------------------------------------------------------------


class _KeyCounter:
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def add(self) -> None:
        self.count += 1
        if self.count > MAX_KEYS:
            raise FormDecodeError(f"Too many parameters: at most {MAX_KEYS} are allowed.")


def _load_json(text: str) -> object:
    try:
        document: object = json.loads(
            text,
            parse_int=str,
            parse_float=str,
            parse_constant=_refuse_json_constant,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as error:
        raise FormDecodeError(
            f"Invalid JSON body: {error.msg} (line {error.lineno}, column {error.colno})."
        ) from None
    except RecursionError:
        raise FormDecodeError("The JSON request body is nested too deeply.") from None
    return document


def _refuse_json_constant(name: str) -> NoReturn:
    raise FormDecodeError(f"Invalid JSON body: {name} is not a number.")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        # Before a refusal could quote the name.
        _refuse_lone_surrogates(key, param=None)
        if key in result:
            raise FormDecodeError(
                f"Received the JSON key {_preview(key)} more than once.", _preview(key)
            )
        result[key] = value
    return result


def _json_key(key: object, parent: str | None) -> str:
    # Keys are always str in JSON; brackets are refused so JSON and form bodies name params alike.
    text = refuse_nul(str(key), parent)
    param = text if parent is None else f"{parent}[{text}]"
    if not text or "[" in text or "]" in text:
        raise FormDecodeError(
            f"Invalid parameter name {_preview(param)}: names must be non-empty and "
            "contain no brackets.",
            _preview(param),
        )
    return text


def _from_json(value: object, param: str, depth: int, counter: _KeyCounter) -> FormValue:
    if isinstance(value, dict | list) and value:
        _check_depth(param, depth)
        if isinstance(value, dict):
            return {
                _json_key(key, param): _from_json(item, f"{param}[{key}]", depth + 1, counter)
                for key, item in value.items()
            }
        return [
            _from_json(item, f"{param}[{index}]", depth + 1, counter)
            for index, item in enumerate(value)
        ]
    counter.add()
    if isinstance(value, dict):
        return {}
    if isinstance(value, list):
        return []
    return _json_scalar(value, param)


def _check_depth(param: str, depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise FormDecodeError(
            f"Parameter {_preview(param)} is nested more than {MAX_DEPTH} levels deep.",
            _preview(param),
        )


def _json_scalar(value: object, param: str) -> str:
    if isinstance(value, str):
        return refuse_nul(_refuse_lone_surrogates(value, param), param)
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    # parse_int/parse_float keep numbers as their literal text, so everything else is a str.
    return str(value)


def _refuse_lone_surrogates(text: str, param: str | None) -> str:
    """`text`, unless it holds a lone surrogate: refused as the form path refuses bytes that
    are not UTF-8, naming the parameter whose value holds it (never quoting the value, which
    may be a card number)."""
    if _LONE_SURROGATE.search(text):
        where = f" in the value of {_preview(param)}" if param is not None else " in a name"
        raise FormDecodeError(f"Invalid UTF-8{where}.", _preview_or_none(param))
    return text
