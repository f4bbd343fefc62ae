"""`expand[]`: replace id fields with the objects they name, at any depth (up to 4 levels).

Which fields may be expanded, and into what, comes from the `(remit_api.options.v1.expandable)`
option on the resource messages and the plain messages nested in them (a customer's
`invoice_settings.default_payment_method`), so a new expandable field needs no code here; only
each kind of resource needs a fetcher, registered by the module that serves it.

Some fields a resource shows only when expanded (a charge's `refunds`, since 2022-11-15):
each is registered with `register_included`, with how to read it for an object that came
without it, so a path may go on through it (`latest_charge.refunds.data.balance_transaction`).

Some expandable ids of Stripe's name objects remit does not serve (a Connect application, a
test clock, an invoice): remit never fills them, and each is registered with
`register_unfilled`, so that a path may name it, as Stripe's clients do, and get the null.

`expand_always` does the same for what Stripe shows expanded without being asked: a payment
error's payment method (see `remit.core.payment_errors`).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import cache

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from remit.core.errors import ErrorKind, RemitError
from remit.core.jsonview import JsonObject, JsonValue, expandable_resource, object_name
from remit.core.payment_errors import FetchPaymentMethods, expand_payment_methods
from remit.rest.context import ApiContext
from remit.rest.errors import StripeError

log = logging.getLogger(__name__)

MAX_DEPTH = 4
MAX_CONCURRENT_FETCHES = 8
"""A list of 100 intents declined by as many cards asks the core for them 8 at a time."""

Fetcher = Callable[[ApiContext, object, str], Awaitable[JsonObject]]
WithinFetcher = Callable[[ApiContext, object, str, JsonObject], Awaitable[JsonObject]]
"""Fetches an object as it was to the resource object whose field names it (the last argument:
the nearest object with an `object` and an `id` around the id): a charge's Radar rule as it was
when it decided the charge."""
Includer = Callable[[ApiContext, object, JsonObject], Awaitable[JsonObject]]
"""Reads, for an object that came without it, a field shown only when expanded."""


class GoneError(Exception):
    """Raised by a fetcher whose object no longer exists (a deleted Radar rule a charge still
    names): the id stays in place, unexpanded, rather than failing the whole response."""


Finish = Callable[[JsonObject], Awaitable[JsonObject]]
"""What to do to each fetched object before it takes the id's place (render it at a version)."""
_FETCHERS: dict[str, Fetcher] = {}
_WITHIN_FETCHERS: dict[str, WithinFetcher] = {}
_RESOURCE_BY_ID_PREFIX: dict[str, str] = {}
_RESOURCE_MESSAGES: list[Descriptor] = []
_INCLUDERS: dict[tuple[str, str], Includer] = {}
_UNFILLED: dict[tuple[str, str], bool] = {}
"""Each field `register_unfilled` makes known, and whether the object leaves its key out."""


def register_resource(
    descriptor: Descriptor,
    fetch: Fetcher | None = None,
    *,
    id_prefix: str | None = None,
    fetch_within: WithinFetcher | None = None,
) -> None:
    """Make a resource message's expandable fields known, and (optionally) how to fetch it and
    the prefix of its ids (which tells the resource of a polymorphic id, such as a balance
    transaction's `source`). `fetch_within`, when given, fetches it instead where its id is
    found inside another resource object (see `WithinFetcher`)."""
    _RESOURCE_MESSAGES.append(descriptor)
    _resource_message.cache_clear()
    name = object_name(descriptor)
    if fetch is not None and name is not None:
        _FETCHERS[name] = fetch
    if fetch_within is not None and name is not None:
        _WITHIN_FETCHERS[name] = fetch_within
    if id_prefix is not None and name is not None:
        _RESOURCE_BY_ID_PREFIX[id_prefix] = name


def register_included(resource: str, field: str, include: Includer) -> None:
    """Make `field` of `resource` (its `object` name) one shown only when expanded, read by
    `include` for an object rendered without it."""
    _INCLUDERS[resource, field] = include


def register_unfilled(resource: str, *fields: str, left_out: bool = False) -> None:
    """Make each of `fields` of `resource` (its `object` name) an expandable id of Stripe's
    that remit never fills: it names an object remit does not serve, so remit's objects show
    it null, or, `left_out`, not at all, as Stripe leaves it out where it has no value (a
    charge's `transfer`, there only on Connect's destination charges). `expand[]` may name it
    and gets the null: a field left out appears, null, once expanded, as fields Stripe shows
    only when expanded do, so that a client reading what it asked for finds the key. A path
    may not go on through it, as it leads nowhere."""
    for field in fields:
        _UNFILLED[resource, field] = left_out


def never_filled(resource: str, field: str) -> bool:
    """Whether `field` of `resource` is an expandable id remit never fills
    (`register_unfilled`)."""
    return (resource, field) in _UNFILLED


def never_shown(resource: str, field: str) -> bool:
    """Whether `field` of `resource` is an expandable id remit never fills, whose key the object
    leaves out (`register_unfilled` with `left_out`)."""
    return _UNFILLED.get((resource, field), False)


@cache
def _resource_message(object_kind: str) -> Descriptor | None:
    for descriptor in _RESOURCE_MESSAGES:
        if object_name(descriptor) == object_kind:
            return descriptor
    return None


@cache
def _expandable_fields(message: Descriptor) -> dict[str, frozenset[str]]:
    """Each expandable field and the resources its id may name: one, or several (`any_of`)."""
    return {
        field.name: resources
        for field in message.fields
        if (resources := _expansion_resources(field))
    }


def _expansion_resources(field: FieldDescriptor) -> frozenset[str]:
    from remit_api.options.v1 import options_pb2

    single = expandable_resource(field)
    if single is not None:
        return frozenset({single})
    options = field.GetOptions()
    if not options.HasExtension(options_pb2.expandable):
        return frozenset()
    return frozenset(options.Extensions[options_pb2.expandable].any_of)


def _resource_of(resources: frozenset[str] | None, object_id: str) -> str | None:
    """The resource `object_id` names, of those the field allows: the only one, or the one
    its id prefix is registered for."""
    if not resources:
        return None
    if len(resources) == 1:
        return next(iter(resources))
    named = _RESOURCE_BY_ID_PREFIX.get(object_id.partition("_")[0])
    return named if named in resources else None


def _field_message(message: Descriptor | None, name: str) -> Descriptor | None:
    """The message a field renders, which describes a nested object without an `object` of
    its own (the only way to know its expandable fields)."""
    field = None if message is None else message.fields_by_name.get(name)
    return None if field is None else field.message_type


def cannot_expand(path: str) -> StripeError:
    return StripeError.invalid_request(
        f"This property cannot be expanded ({path}).", code="parameter_invalid", param="expand"
    )


def can_include(resource: str, field: str) -> bool:
    """Whether `field` of `resource` is one shown only when expanded (`register_included`)."""
    return (resource, field) in _INCLUDERS


def can_fetch(resource: str) -> bool:
    """Whether an id naming `resource` can be expanded: a fetcher is registered for it."""
    return resource in _FETCHERS


def refuse_all_but(paths: Iterable[str], expandable: Collection[str]) -> None:
    """For an object whose only expandable fields are objects already (an event's `data` and
    `request`), so that expanding them changes nothing: any other path, one that goes on inside
    them included, is Stripe's 400 for a field that cannot be expanded."""
    for path in paths:
        if path not in expandable:
            raise cannot_expand(path)


class _MissingFieldError(Exception):
    """A path names a field the object does not have (at the latest schema, perhaps only)."""


async def expand(
    obj: JsonObject,
    paths: Iterable[str],
    context: ApiContext,
    deps: object,
    *,
    finish: Finish | None = None,
    best_effort: bool = False,
) -> None:
    """Expand each dotted path of `paths` in `obj`, in place; each fetched object goes through
    `finish` first, if given. A field shown only when expanded is read where `obj` lacks it:
    `obj` is rendered at the request's version by now, and any version that shows the field
    unasked has put it there already. `best_effort`: see `expand_present`."""
    for path in _shallowest_first(paths):
        try:
            fetching = _Fetching(context, deps, finish, include=True)
            await _expand(obj, path.split("."), path, fetching)
        except _MissingFieldError:
            if not best_effort:
                raise cannot_expand(path) from None
            _left_unexpanded(path, "a field it names is missing")
        except Exception as error:
            if not best_effort:
                raise
            _left_unexpanded(path, _reason(error))


async def expand_present(
    obj: JsonObject,
    paths: Iterable[str],
    context: ApiContext,
    deps: object,
    *,
    best_effort: bool = False,
) -> list[str]:
    """Expand, in place, each path whose fields `obj` has, and return the others: fields only
    an older version shows (a PaymentIntent's `charges`), or that only expanding shows (a
    charge's `refunds`, which an older version shows unasked, in its own shape), to expand
    once `obj` is rendered at it. A deleted object's stub has none of the fields a path could
    name: nothing to expand.

    `best_effort`, for the answer of work already done (a payment, a capture): a path whose
    expansion fails (a fetch fails) is left as it is, ids in place, instead of failing the
    answer. The paths were checked against the schema before the work ran
    (remit.rest.expand_paths), so what fails here is not the client's to fix, and an error
    would tell the client the work had not been done."""
    if obj.get("deleted") is True:
        return []
    missing = []
    for path in _shallowest_first(paths):
        try:
            fetching = _Fetching(context, deps, None, include=False)
            await _expand(obj, path.split("."), path, fetching)
        except _MissingFieldError:
            missing.append(path)
        except Exception as error:
            if not best_effort:
                raise
            _left_unexpanded(path, _reason(error))
    return missing


def _left_unexpanded(path: str, reason: str) -> None:
    log.warning("expand[] path %s left unexpanded in an answer of work done: %s", path, reason)


def _reason(error: Exception) -> str:
    if isinstance(error, RemitError):
        return error.kind.name
    if isinstance(error, StripeError):
        return f"{error.http_status} {error.code}"
    return type(error).__name__


def _shallowest_first(paths: Iterable[str]) -> list[str]:
    ordered = sorted(set(paths), key=lambda p: p.count("."))
    for path in ordered:
        if path.count(".") >= MAX_DEPTH:
            raise StripeError.invalid_request(
                f"You cannot expand more than {MAX_DEPTH} levels of a property ({path}).",
                code="parameter_invalid",
                param="expand",
            )
    return ordered


@dataclass(frozen=True)
class _Fetching:
    context: ApiContext
    deps: object
    finish: Finish | None
    include: bool

    async def fetch(
        self, resource: str, object_id: str, within: JsonObject | None = None
    ) -> JsonObject:
        fetch_within = _WITHIN_FETCHERS.get(resource)
        if fetch_within is not None and within is not None:
            fetched = await fetch_within(self.context, self.deps, object_id, within)
        else:
            fetched = await _FETCHERS[resource](self.context, self.deps, object_id)
        return fetched if self.finish is None else await self.finish(fetched)

    def includer(self, kind: JsonValue, field: str) -> Includer | None:
        if not self.include or not isinstance(kind, str):
            return None
        return _INCLUDERS.get((kind, field))

    async def included(self, include: Includer, obj: JsonObject) -> JsonObject:
        value = await include(self.context, self.deps, obj)
        return value if self.finish is None else await self.finish(value)


async def _expand(
    obj: JsonObject,
    segments: list[str],
    path: str,
    fetching: _Fetching,
    nested_in: Descriptor | None = None,
    within: JsonObject | None = None,
    one_of: frozenset[str] = frozenset(),
) -> None:
    """`nested_in` is the message of an object that has no `object` key, as its parent's field
    gives it; `within`, the nearest resource object around `obj` (or `obj` itself); `one_of`,
    the resources the field `obj` was reached through may name, when it may name several (a
    balance transaction's `source`)."""
    head, rest = segments[0], segments[1:]
    kind = obj.get("object")
    if kind == "list" and head == "data":
        data = obj.get("data")
        if isinstance(data, list):
            for item in data:
                if isinstance(item, dict) and rest:
                    await _expand(item, rest, path, fetching)
        return
    if isinstance(kind, str) and isinstance(obj.get("id"), str):
        within = obj
    if head not in obj:
        if obj.get("deleted") is True:
            # A deleted object's stub (an expanded customer since deleted) has none of the
            # fields a path could name.
            return
        if isinstance(kind, str) and never_shown(kind, head):
            # A field remit never fills and leaves out (a charge's `transfer`) is asked for:
            # it is there, null, as the object it would name does not exist.
            obj[head] = None
            return
        if isinstance(kind, str) and _another_kind_has(kind, one_of, head):
            # A payout reached through a balance transaction's `source` has no
            # `payment_intent`, which a charge there has: the path is one for the charges (and
            # was accepted up front for them), so the payout stays as it is, as Stripe leaves
            # it, rather than failing a page that happens to hold one.
            return
        include = fetching.includer(kind, head)
        if include is None:
            raise _MissingFieldError(path)
        obj[head] = await fetching.included(include, obj)
    value: JsonValue = obj[head]
    message = _resource_message(kind) if isinstance(kind, str) else nested_in
    resources = None if message is None else _expandable_fields(message).get(head)
    if isinstance(value, str):
        resource = _resource_of(resources, value)
        # An id in a field remit never fills (`register_unfilled`) is refused too, never handed
        # back as it is: the client asked for the object, and remit has none to give.
        if resource is None or resource not in _FETCHERS:
            raise cannot_expand(path)
        try:
            value = await fetching.fetch(resource, value, within)
        except GoneError:
            return
        obj[head] = value
    elif value is None:
        # Nothing to expand, nor to go through: the path was checked against the schema before
        # the request ran (remit.rest.expand_paths), whatever this object holds.
        return
    elif not isinstance(value, dict | list):
        raise cannot_expand(path)  # a number or a flag names no object
    if rest:
        if not isinstance(value, dict):
            raise cannot_expand(path)
        one_of = resources if resources is not None and len(resources) > 1 else frozenset()
        await _expand(value, rest, path, fetching, _field_message(message, head), within, one_of)


def _another_kind_has(kind: str, one_of: frozenset[str], field: str) -> bool:
    """Whether `field` is one that a resource `kind` never has and another of `one_of` (the
    resources a polymorphic field may name) does."""
    return (
        kind in one_of
        and not _may_have(kind, field)
        and any(_may_have(other, field) for other in one_of - {kind})
    )


def _may_have(resource: str, field: str) -> bool:
    """Whether objects of `resource` have `field`: in their message, shown when expanded
    (`register_included`), or an id remit never fills (`register_unfilled`)."""
    message = _resource_message(resource)
    return (
        (message is not None and field in message.fields_by_name)
        or can_include(resource, field)
        or never_filled(resource, field)
    )


async def expand_always(body: JsonObject, context: ApiContext, deps: object) -> None:
    """Expand, in place, what Stripe always shows expanded: each payment error's payment
    method, every distinct one fetched once and concurrently."""
    fetch = _FETCHERS.get("payment_method")
    if fetch is not None:
        await expand_payment_methods(body, _fetch_existing(fetch, context, deps))


def _fetch_existing(fetch: Fetcher, context: ApiContext, deps: object) -> FetchPaymentMethods:
    """`fetch` for many ids at once, leaving out those it cannot fetch: a payment method gone
    for good, or one the core cannot answer for just now, leaves its id in place. What the
    response reports (a capture, a cancel, a decline) has already happened; failing it over a
    detail shown for convenience would tell the client otherwise."""
    limit = asyncio.Semaphore(MAX_CONCURRENT_FETCHES)

    async def fetch_one(object_id: str) -> JsonObject | None:
        async with limit:
            try:
                return await fetch(context, deps, object_id)
            except RemitError as error:
                if error.kind is not ErrorKind.NOT_FOUND:
                    log.warning("payment method %s left unexpanded: %s", object_id, error.kind.name)
                return None

    async def fetch_all(object_ids: Collection[str]) -> Mapping[str, JsonObject]:
        ordered = sorted(object_ids)
        found = await asyncio.gather(*(fetch_one(object_id) for object_id in ordered))
        return {
            object_id: obj for object_id, obj in zip(ordered, found, strict=True) if obj is not None
        }

    return fetch_all
