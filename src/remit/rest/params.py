"""Declarative parameter schemas: each endpoint states exactly what it accepts.

A `Schema` maps parameter names to `Field`s and parses the output of `remit.rest.forms` into typed
values (int, bool, str, lists, nested dicts). It follows Stripe's wire behaviour: unknown
parameters are rejected, `""` means "unset" only where a field is declared `unsettable=True`
(it then parses to `UNSET`), and every `ParamError` names its parameter the way Stripe does:
`metadata[order]`, `shipping[address][city]`, `items[0][price]`. Error codes and messages quote
Stripe where its wording is known (the shared reference stripe-wire.md, and API responses quoted
in public issue trackers); elsewhere the code is `parameter_invalid` with a plain sentence.
"""

import difflib
import enum
import re
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Final, Generic, Self, TypeVar

from remit.core.currency import SUPPORTED_CURRENCIES
from remit.core.statement_descriptors import (
    MAX_STATEMENT_DESCRIPTOR_LENGTH,
    statement_descriptor_problem,
)
from remit.core.text_limits import abbreviated, quoted_start, too_long_message
from remit.rest.forms import Appended, FormValue

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

DEFAULT_STRING_MAX_LENGTH: Final = 5000
METADATA_MAX_KEYS: Final = 50
METADATA_KEY_MAX_LENGTH: Final = 40
METADATA_VALUE_MAX_LENGTH: Final = 500
EXPAND_MAX_DEPTH: Final = 4
EXPAND_MAX_PATHS: Final = 20
DEFAULT_LIST_LIMIT: Final = 10
MAX_LIST_LIMIT: Final = 100

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_INTEGER = re.compile(r"-?[0-9]{1,19}")
_INDEX = re.compile(r"[0-9]+")
_EXPAND_PATH = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
_MAX_NAMES_LISTED: Final = 10


class UnsetType(enum.Enum):
    """The type of `UNSET`, so `value is UNSET` narrows under mypy."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = UnsetType.UNSET
"""What an `unsettable` field parses `""` to: the client asked to clear the field."""


class ParamError(ValueError):
    """A parameter was missing, unknown or invalid; carries Stripe's `code` and `param`."""

    def __init__(self, message: str, *, code: str, param: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param


# --- Field types ----------------------------------------------------------------------------


class Field(ABC, Generic[T_co]):
    """How one parameter is read. Subclasses implement `parse_value` for non-empty input."""

    empty_code: ClassVar[str] = "parameter_invalid_empty"

    def __init__(self, *, unsettable: bool = False) -> None:
        self.unsettable = unsettable

    def parse(self, value: FormValue, param: str) -> T_co | UnsetType:
        """Read `value`, sent under the name `param`; `""` is `UNSET` if the field allows it."""
        if value == "" and self.unsettable:
            return UNSET
        return self.parse_non_empty(value, param)

    def parse_non_empty(self, value: FormValue, param: str) -> T_co:
        """Read `value`, refusing `""` (array items, where "unset" means nothing)."""
        if value == "":
            raise ParamError(_empty_message(param), code=self.empty_code, param=param)
        return self.parse_value(value, param)

    @abstractmethod
    def parse_value(self, value: FormValue, param: str) -> T_co:
        """Read a value that is not `""`."""


class Integer(Field[int]):
    """A base-10 int64, optionally bounded (amounts: `Integer(min=1, max=99_999_999)`)."""

    def __init__(
        self,
        *,
        min: int | None = None,
        max: int | None = None,
        unsettable: bool = False,
        over_max_code: str = "parameter_invalid_integer",
    ) -> None:
        super().__init__(unsettable=unsettable)
        self.minimum = min
        self.maximum = max
        # An amount past the most a payment may be is Stripe's `amount_too_large`, as the core
        # says it: an integer, just too large.
        self.over_max_code = over_max_code

    def parse_value(self, value: FormValue, param: str) -> int:
        text = _scalar(value, param, "integer", code="parameter_invalid_integer")
        if not _INTEGER.fullmatch(text) or not _INT64_MIN <= int(text) <= _INT64_MAX:
            raise ParamError(
                f"Invalid integer: {_abbreviate(text)}",
                code="parameter_invalid_integer",
                param=param,
            )
        number = int(text)
        if self.minimum is not None and number < self.minimum:
            raise ParamError(
                f"This value must be greater than or equal to {self.minimum}.",
                code="parameter_invalid_integer",
                param=param,
            )
        if self.maximum is not None and number > self.maximum:
            raise ParamError(
                f"This value must be less than or equal to {self.maximum}.",
                code=self.over_max_code,
                param=param,
            )
        return number


class Boolean(Field[bool]):
    """Exactly `true` or `false`, as stripe-python sends them."""

    def parse_value(self, value: FormValue, param: str) -> bool:
        text = _scalar(value, param, "boolean")
        if text == "true":
            return True
        if text == "false":
            return False
        raise ParamError(
            f"Invalid boolean: {_abbreviate(text)}", code="parameter_invalid", param=param
        )


class BooleanOrEnum(Field[bool | str]):
    """`true`, `false`, or one of `values`: Stripe's `anyOf: [boolean, enum]` (`off_session`:
    `true`, or how the payment is made off-session, `one_off` or `recurring`)."""

    def __init__(self, *values: str, unsettable: bool = False) -> None:
        super().__init__(unsettable=unsettable)
        self.values = tuple(values)

    def parse_value(self, value: FormValue, param: str) -> bool | str:
        if isinstance(value, str) and value in self.values:
            return value
        text = _scalar(value, param, "boolean")
        if text in ("true", "false"):
            return text == "true"
        raise ParamError(
            f"Invalid {param}: must be true, false or one of {_one_of(self.values)}",
            code="parameter_invalid",
            param=param,
        )


class String(Field[str]):
    """Free text up to `max_length` characters (Stripe's default limit is 5000)."""

    empty_code: ClassVar[str] = "parameter_invalid_string_empty"

    def __init__(
        self, *, max_length: int = DEFAULT_STRING_MAX_LENGTH, unsettable: bool = False
    ) -> None:
        super().__init__(unsettable=unsettable)
        self.max_length = max_length

    def parse_value(self, value: FormValue, param: str) -> str:
        text = _scalar(value, param, "string")
        if len(text) > self.max_length:
            raise ParamError(
                too_long_message(text, self.max_length), code="parameter_invalid", param=param
            )
        return text


PATH_PARAM: Final = String()
"""An id in a path (`/v1/payment_intents/{intent}`): a string parameter like any other, held to
Stripe's default limit on text."""


# One @, something on both sides, a dot in the domain, no spaces: what every deliverable address
# has. The mailbox itself is the receiving server's to judge.
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")


class Email(String):
    """An email address (a receipt's, a customer's, a cardholder's)."""

    def parse_value(self, value: FormValue, param: str) -> str:
        text = super().parse_value(value, param)
        if not _EMAIL.fullmatch(text):
            raise ParamError(
                f"Invalid email address: {_abbreviate(text)}", code="email_invalid", param=param
            )
        return text


class StatementDescriptor(String):
    """Text for a statement (a payment's descriptor or suffix, a payout's), held to Stripe's
    rules for it (`remit.core.statement_descriptors`, which the core holds every caller to
    as well); `needs_letter` for a payment's full descriptor, not a suffix or a payout's."""

    def __init__(self, *, needs_letter: bool = True, unsettable: bool = False) -> None:
        super().__init__(max_length=MAX_STATEMENT_DESCRIPTOR_LENGTH, unsettable=unsettable)
        self.needs_letter = needs_letter

    def parse_value(self, value: FormValue, param: str) -> str:
        text = super().parse_value(value, param)
        problem = statement_descriptor_problem(text, param, needs_letter=self.needs_letter)
        if problem is not None:
            raise ParamError(problem.message, code=problem.code, param=param)
        return text


class Enum(Field[str]):
    """One of a fixed set of strings: `Enum("automatic", "automatic_async", "manual")`."""

    def __init__(self, *values: str, unsettable: bool = False) -> None:
        if not values:
            raise ValueError("an Enum needs at least one value")
        super().__init__(unsettable=unsettable)
        self.values = tuple(values)

    def parse_value(self, value: FormValue, param: str) -> str:
        if isinstance(value, str) and value in self.values:
            return value
        raise ParamError(
            f"Invalid {param}: must be one of {_one_of(self.values)}",
            code="parameter_invalid",
            param=param,
        )


class NamedEnum(Enum):
    """An `Enum` whose refusal names the value it was given, for long lists of names where a
    client looks for the one it got wrong (`payment_method_types`)."""

    def parse_value(self, value: FormValue, param: str) -> str:
        if isinstance(value, str) and value in self.values:
            return value
        given = _abbreviate(value) if isinstance(value, str) else "a non-string value"
        raise ParamError(
            f"Invalid {param}: {given!r} is not one of {_one_of(self.values)}",
            code="parameter_invalid",
            param=param,
        )


class Currency(Field[str]):
    """A supported ISO currency code; accepted in any case and returned lowercase."""

    def __init__(
        self, *, supported: Mapping[str, int] = SUPPORTED_CURRENCIES, unsettable: bool = False
    ) -> None:
        super().__init__(unsettable=unsettable)
        self.supported = supported

    def parse_value(self, value: FormValue, param: str) -> str:
        code = _scalar(value, param, "currency").lower()
        if code in self.supported:
            return code
        raise ParamError(
            f"Invalid currency: {_abbreviate(code)}. remit currently supports these "
            f"currencies: {', '.join(sorted(self.supported))}",
            code="parameter_invalid",
            param=param,
        )


_CURRENCY_CODE = re.compile(r"[A-Za-z]{3}")


class CurrencyCode(Field[str]):
    """Any three-letter currency code, returned lowercase: a list filter. Stripe supports
    currencies remit does not; a filter naming one matches nothing rather than being refused,
    and only a value that is no currency code at all is a 400."""

    def parse_value(self, value: FormValue, param: str) -> str:
        # Matched before lowercasing: some non-ASCII letters lowercase to ASCII ones.
        code = _scalar(value, param, "currency")
        if _CURRENCY_CODE.fullmatch(code):
            return code.lower()
        raise ParamError(
            f"Invalid currency: {_abbreviate(code)}. A currency is a three-letter ISO code, "
            "such as usd.",
            code="parameter_invalid",
            param=param,
        )


class Metadata(Field[dict[str, str]]):
    """Stripe's str->str map. `metadata=""` clears it all (UNSET); `metadata[k]=""` keeps `""`,
    which the endpoint must treat as "remove key k". The 50-key limit applies to the request;
    the endpoint must also check it against the object's merged metadata."""

    def __init__(self, *, unsettable: bool = True) -> None:
        super().__init__(unsettable=unsettable)

    def parse_value(self, value: FormValue, param: str) -> dict[str, str]:
        if isinstance(value, Appended):
            raise _empty_key(param)
        entries = _mapping(value, param)
        if len(entries) > METADATA_MAX_KEYS:
            raise ParamError(
                f"Invalid {param}: you can specify up to {METADATA_MAX_KEYS} keys, "
                f"but {len(entries)} were given.",
                code="parameter_invalid",
                param=param,
            )
        return {
            self._key(key, param): self._value(item, _child_param(param, key))
            for key, item in entries.items()
        }

    @staticmethod
    def _key(key: str, param: str) -> str:
        if not key:
            raise _empty_key(param)
        if len(key) > METADATA_KEY_MAX_LENGTH:
            raise ParamError(
                f"Invalid key: {quoted_start(key)} must be a string of at most "
                f"{METADATA_KEY_MAX_LENGTH} characters",
                code="parameter_invalid",
                param=param,
            )
        return key

    @staticmethod
    def _value(item: FormValue, param: str) -> str:
        if not isinstance(item, str):
            raise ParamError(
                f"Invalid val: {param} must be a string, not {_describe(item)}",
                code="parameter_invalid",
                param=param,
            )
        if len(item) > METADATA_VALUE_MAX_LENGTH:
            raise ParamError(
                f"Invalid val: {quoted_start(item)} must be a string of at most "
                f"{METADATA_VALUE_MAX_LENGTH} characters",
                code="parameter_invalid",
                param=param,
            )
        return item


def _empty_key(param: str) -> ParamError:
    return ParamError(
        f"Invalid {param}: keys must not be empty; name each value, such as {param}[key]=value.",
        code="parameter_invalid",
        param=param,
    )


class Array(Field[list[T]]):
    """An array whose items are all read by `item`; `""` items are refused."""

    def __init__(
        self, item: Field[T], *, max_items: int | None = None, unsettable: bool = False
    ) -> None:
        super().__init__(unsettable=unsettable)
        self.item = item
        self.max_items = max_items

    def parse_value(self, value: FormValue, param: str) -> list[T]:
        items = _sequence(value, param)
        if self.max_items is not None and len(items) > self.max_items:
            raise ParamError(
                f"Invalid array: {param} can have at most {self.max_items} items, "
                f"but {len(items)} were given.",
                code="parameter_invalid",
                param=param,
            )
        return [
            self.item.parse_non_empty(item, _child_param(param, str(index)))
            for index, item in enumerate(items)
        ]


class StringList(Array[str]):
    """An array of strings, such as `payment_method_types`.

    With `distinct`, `max_items` counts each string once, however often it is given: for a
    list the core takes as a set and bounds after removing duplicates (`enabled_events`), so
    that the facade refuses exactly what the core would. The strings are returned as given."""

    def __init__(
        self,
        *,
        max_items: int | None = None,
        max_length: int = DEFAULT_STRING_MAX_LENGTH,
        unsettable: bool = False,
        distinct: bool = False,
    ) -> None:
        super().__init__(
            String(max_length=max_length),
            max_items=None if distinct else max_items,
            unsettable=unsettable,
        )
        self.max_distinct = max_items if distinct else None

    def parse_value(self, value: FormValue, param: str) -> list[str]:
        strings = super().parse_value(value, param)
        if self.max_distinct is not None:
            count = len(set(strings))
            if count > self.max_distinct:
                raise ParamError(
                    f"Invalid array: {param} can have at most {self.max_distinct} distinct "
                    f"items, but {count} were given.",
                    code="parameter_invalid",
                    param=param,
                )
        return strings


class ExpandList(Field[list[str]]):
    """`expand[]`: up to 20 dotted paths of at most 4 levels, deduplicated in order."""

    def parse_value(self, value: FormValue, param: str) -> list[str]:
        items = _sequence(value, param)
        if len(items) > EXPAND_MAX_PATHS:
            raise ParamError(
                f"You can expand at most {EXPAND_MAX_PATHS} properties per request, "
                f"but {len(items)} were given.",
                code="parameter_invalid",
                param=param,
            )
        paths = [
            self._path(item, _child_param(param, str(index))) for index, item in enumerate(items)
        ]
        return list(dict.fromkeys(paths))

    @staticmethod
    def _path(item: FormValue, param: str) -> str:
        path = String().parse_non_empty(item, param)
        if not _EXPAND_PATH.fullmatch(path):
            raise ParamError(
                f"Invalid expand path: {_abbreviate(path)}. Name fields joined by dots, "
                "such as data.customer.",
                code="parameter_invalid",
                param=param,
            )
        if path.count(".") >= EXPAND_MAX_DEPTH:
            raise ParamError(
                f"You cannot expand more than {EXPAND_MAX_DEPTH} levels of a property. "
                f"Property: {_abbreviate(path)}",
                code="parameter_invalid",
                param=param,
            )
        return path


class Object(Field[dict[str, object]]):
    """A nested object with its own declared fields: `shipping`, `shipping[address]`."""

    def __init__(
        self,
        fields: Mapping[str, "Field[object]"],
        *,
        required: Iterable[str] = (),
        exclusive: Iterable[Collection[str]] = (),
        unsettable: bool = False,
    ) -> None:
        super().__init__(unsettable=unsettable)
        self.schema = Schema(fields, required=required, exclusive=exclusive)

    def parse_value(self, value: FormValue, param: str) -> dict[str, object]:
        return self.schema.parse_nested(_mapping(value, param), parent=param)


@dataclass(frozen=True, slots=True)
class IntRange:
    """A filter such as `created`: any of the four bounds may be absent."""

    gt: int | None = None
    gte: int | None = None
    lt: int | None = None
    lte: int | None = None

    @classmethod
    def exactly(cls, value: int) -> Self:
        return cls(gte=value, lte=value)

    def contains(self, value: int) -> bool:
        return (
            (self.gt is None or value > self.gt)
            and (self.gte is None or value >= self.gte)
            and (self.lt is None or value < self.lt)
            and (self.lte is None or value <= self.lte)
        )


class RangeFilter(Field[IntRange]):
    """An int (`created=1700000000`, meaning exactly) or `created[gt|gte|lt|lte]=...`."""

    def parse_value(self, value: FormValue, param: str) -> IntRange:
        if isinstance(value, str):
            return IntRange.exactly(Integer().parse_value(value, param))
        bounds = _RANGE_BOUNDS.parse_nested(_mapping(value, param), parent=param)
        return IntRange(
            gt=_optional_int(bounds, "gt"),
            gte=_optional_int(bounds, "gte"),
            lt=_optional_int(bounds, "lt"),
            lte=_optional_int(bounds, "lte"),
        )


# --- Schema ---------------------------------------------------------------------------------


class Schema:
    """The parameters one endpoint accepts. `parse` raises `ParamError` on the first problem.

    Checks run in this order: unknown names, missing required names, each value (in the order
    the client sent them), then mutually exclusive groups.
    """

    def __init__(
        self,
        fields: Mapping[str, Field[object]],
        *,
        required: Iterable[str] = (),
        exclusive: Iterable[Collection[str]] = (),
    ) -> None:
        self.fields: Mapping[str, Field[object]] = MappingProxyType(dict(fields))
        self.required = frozenset(required)
        self.exclusive = tuple(tuple(group) for group in exclusive)
        self._check_declaration()

    def extend(
        self,
        fields: Mapping[str, Field[object]],
        *,
        required: Iterable[str] = (),
        exclusive: Iterable[Collection[str]] = (),
    ) -> "Schema":
        """A new schema with more (or overriding) fields, required names and exclusive groups."""
        return Schema(
            {**self.fields, **fields},
            required=self.required | frozenset(required),
            exclusive=(*self.exclusive, *exclusive),
        )

    def parse(self, form: Mapping[str, FormValue]) -> dict[str, object]:
        """Parse top-level parameters; the result holds only the names the client sent."""
        return self.parse_nested(form, parent=None)

    def parse_nested(self, form: Mapping[str, FormValue], parent: str | None) -> dict[str, object]:
        """Parse the entries of the object sent as `parent` (None at the top level)."""
        self._refuse_unknown(form, parent)
        self._require_present(form, parent)
        parsed: dict[str, object] = {
            name: self.fields[name].parse(value, _param(parent, name))
            for name, value in form.items()
        }
        self._refuse_exclusive(form, parent)
        return parsed

    def _check_declaration(self) -> None:
        named = self.required.union(*self.exclusive)
        undeclared = named - self.fields.keys()
        if undeclared:
            raise ValueError(f"schema refers to undeclared fields: {sorted(undeclared)}")
        unsettable = sorted(name for name in self.required if self.fields[name].unsettable)
        if unsettable:
            raise ValueError(f"required fields cannot be unsettable: {unsettable}")
        if any(len(set(group)) < 2 for group in self.exclusive):
            raise ValueError("an exclusive group needs at least two distinct fields")

    def _refuse_unknown(self, form: Mapping[str, FormValue], parent: str | None) -> None:
        unknown = [name for name in form if name not in self.fields]
        if not unknown:
            return
        params = [_param(parent, _abbreviate(name)) for name in unknown]
        if len(unknown) == 1:
            message = f"Received unknown parameter: {params[0]}"
            guesses = difflib.get_close_matches(unknown[0], self.fields, n=1, cutoff=0.8)
            if guesses:
                message += f". Did you mean {_param(parent, guesses[0])}?"
        else:
            message = f"Received unknown parameters: {_list_names(params)}"
        raise ParamError(message, code="parameter_unknown", param=params[0])

    def _require_present(self, form: Mapping[str, FormValue], parent: str | None) -> None:
        for name in self.fields:
            if name in self.required and name not in form:
                param = _param(parent, name)
                raise ParamError(
                    f"Missing required param: {param}.", code="parameter_missing", param=param
                )

    def _refuse_exclusive(self, form: Mapping[str, FormValue], parent: str | None) -> None:
        for group in self.exclusive:
            given = [_param(parent, name) for name in group if name in form]
            if len(given) < 2:
                continue
            if len(given) == 2:
                message = f"Received both {given[0]} and {given[1]} parameters."
            else:
                message = f"Received more than one of {', '.join(given)}."
            raise ParamError(
                f"{message} Please pass in only one.", code="parameters_exclusive", param=given[-1]
            )


_RANGE_BOUNDS: Final = Schema({bound: Integer() for bound in ("gt", "gte", "lt", "lte")})


# --- List and search endpoints --------------------------------------------------------------

LIST_PARAMS: Final[Mapping[str, Field[object]]] = MappingProxyType(
    {
        "limit": Integer(min=1, max=MAX_LIST_LIMIT),
        "starting_after": String(),
        "ending_before": String(),
        "expand": ExpandList(),
    }
)
"""What every list endpoint takes; `list_schema` adds these and makes the cursors exclusive."""

CURSOR_PARAMS: Final = ("starting_after", "ending_before")

SEARCH_PARAMS: Final[Mapping[str, Field[object]]] = MappingProxyType(
    {
        "query": String(),
        "limit": Integer(min=1, max=MAX_LIST_LIMIT),
        "page": String(),
        "expand": ExpandList(),
    }
)


def list_schema(
    filters: Mapping[str, Field[object]] | None = None,
    *,
    created: bool = True,
    required: Iterable[str] = (),
) -> Schema:
    """A list endpoint's schema: pagination and `expand`, `created` unless turned off, and
    the endpoint's own `filters` (such as `customer`)."""
    created_filter: dict[str, Field[object]] = {"created": RangeFilter()} if created else {}
    return Schema(
        {**LIST_PARAMS, **created_filter, **(filters or {})},
        required=required,
        exclusive=[CURSOR_PARAMS],
    )


def search_schema(filters: Mapping[str, Field[object]] | None = None) -> Schema:
    """A search endpoint's schema: `query` (required), `limit`, `page` and `expand`."""
    return Schema({**SEARCH_PARAMS, **(filters or {})}, required={"query"})


@dataclass(frozen=True, slots=True)
class PageRequest:
    """The pagination part of a parsed list request, with Stripe's default `limit` of 10."""

    limit: int = DEFAULT_LIST_LIMIT
    starting_after: str | None = None
    ending_before: str | None = None
    created: IntRange | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, object]) -> Self:
        """Build from the output of a `list_schema(...).parse(...)`."""
        limit = params.get("limit")
        created = params.get("created")
        return cls(
            limit=limit if isinstance(limit, int) else DEFAULT_LIST_LIMIT,
            starting_after=_optional_str(params, "starting_after"),
            ending_before=_optional_str(params, "ending_before"),
            created=created if isinstance(created, IntRange) else None,
        )


# --- Helpers --------------------------------------------------------------------------------


def _param(parent: str | None, name: str) -> str:
    return name if parent is None else f"{parent}[{name}]"


def _child_param(parent: str, key: str) -> str:
    return f"{parent}[{key}]"


def _empty_message(param: str) -> str:
    return (
        f"You passed an empty string for '{param}'. We assume empty values are an attempt to "
        f"unset a parameter; however '{param}' cannot be unset. You should remove '{param}' "
        "from your request or supply a non-empty value."
    )


def _scalar(value: FormValue, param: str, kind: str, *, code: str = "parameter_invalid") -> str:
    if isinstance(value, str):
        return value
    raise ParamError(
        f"Invalid {kind}: {param} must be a single value, not {_describe(value)}.",
        code=code,
        param=param,
    )


def _mapping(value: FormValue, param: str) -> Mapping[str, FormValue]:
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        # The decoder turns keys 0..n-1 into a list; a map (metadata[0]=a) wants them back.
        return {str(index): item for index, item in enumerate(value)}
    raise ParamError(
        f"Invalid hash: {param} must be an object, such as {param}[key]=value.",
        code="parameter_invalid",
        param=param,
    )


def _sequence(value: FormValue, param: str) -> list[FormValue]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and value and all(_INDEX.fullmatch(key) for key in value):
        raise ParamError(
            f"Invalid array: {param} must be indexed from 0 without gaps, "
            f"but has indexes {_list_names(sorted(value, key=int))}.",
            code="parameter_invalid",
            param=param,
        )
    raise ParamError(
        f"Invalid array: {param} must be an array, such as {param}[0]=value.",
        code="parameter_invalid",
        param=param,
    )


def _describe(value: FormValue) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a string"


def _one_of(values: tuple[str, ...]) -> str:
    if len(values) <= 2:
        return " or ".join(values)
    return f"{', '.join(values[:-1])}, or {values[-1]}"


def _list_names(names: list[str]) -> str:
    shown = ", ".join(_abbreviate(name) for name in names[:_MAX_NAMES_LISTED])
    return shown if len(names) <= _MAX_NAMES_LISTED else f"{shown}, ..."


def _abbreviate(text: str, keep: int = 20) -> str:
    """Shorten long client input before echoing it, the way Stripe does (`Lottery Re...ne`),
    never through a run of digits (`remit.core.text_limits.abbreviated`)."""
    return abbreviated(text, keep)


def _optional_int(values: Mapping[str, object], name: str) -> int | None:
    value = values.get(name)
    return value if isinstance(value, int) else None


def _optional_str(values: Mapping[str, object], name: str) -> str | None:
    value = values.get(name)
    return value if isinstance(value, str) else None
