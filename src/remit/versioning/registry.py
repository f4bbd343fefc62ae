"""Loads the version-change modules of `versions/`, checks every change against the latest
schema, and answers which changes apply to what at a given version.

Loading happens once per process (the REST facade imports it at start-up), so a change that
names a field the protobuf descriptors lack stops the process before it serves anything.
"""

import importlib
import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from types import ModuleType

from remit.versioning.change import RelatedObject, VersionChange
from remit.versioning.descriptors import (
    ERROR_OBJECT,
    UnknownFieldError,
    free_form_fields,
    message_for,
    require_absent,
    require_field,
)
from remit.versioning.operations import request_message_for
from versions import KNOWN_VERSIONS, LATEST_VERSION


class InvalidChangeError(TypeError):
    """A version-change module or class breaks the rules (see docs/versioning.md)."""


def module_name(version: str) -> str:
    """`2025-03-31.basil` -> `v2025_03_31` (the date alone names the module)."""
    return "v" + version.split(".")[0].replace("-", "_")


@dataclass(frozen=True)
class VersionModule:
    version: str
    module: ModuleType
    changes: tuple[type[VersionChange], ...]

    @property
    def summary(self) -> str:
        return (self.module.__doc__ or "").strip()


@cache
def version_modules() -> tuple[VersionModule, ...]:
    """Every version that has a change module, newest first, each checked."""
    found: list[VersionModule] = []
    for version in KNOWN_VERSIONS:
        name = f"versions.{module_name(version)}"
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        changes = tuple(
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, VersionChange)
            and value is not VersionChange
            and value.__module__ == module.__name__
        )
        for change in changes:
            change.version = version
            check_change(change)
        if not changes:
            raise InvalidChangeError(f"{name} defines no VersionChange classes")
        if not module.__doc__:
            raise InvalidChangeError(f"{name} has no module docstring")
        found.append(VersionModule(version, module, changes))
    return tuple(found)


def check_change(change: type[VersionChange]) -> None:
    """Enforce the rules every change follows; raise `InvalidChangeError` on the first breach."""
    owner = f"{change.__module__}.{change.__qualname__}"
    if not (change.__doc__ or "").strip():
        raise InvalidChangeError(f"{owner} has no docstring (its changelog entry)")
    if not change.resources:
        raise InvalidChangeError(f"{owner} touches no resource")
    if not change.__name__[:1].isupper() or not _verb_first(change.__name__):
        raise InvalidChangeError(
            f"{owner}: name it with a verb first (RenameX, RemoveY, ...), one of "
            f"{', '.join(sorted(CHANGE_VERBS))}"
        )
    try:
        for resource in change.resources:
            message = message_for(resource)
            for field in change.fields:
                require_field(message, field, owner)
            for field in change.adds_back:
                require_absent(message, field, owner)
        for operation in change.operations:
            request = request_message_for(operation)
            for param in change.params:
                require_field(request, param, owner)
            for param in change.old_params:
                require_absent(request, param, owner)
        for need in change.needs:
            message_for(need.resource)
            if isinstance(need, RelatedObject):
                for resource in change.resources:
                    require_field(message_for(resource), need.field, owner)
    except UnknownFieldError as error:
        raise InvalidChangeError(str(error)) from error
    overridden = {
        name for name in CHANGE_HOOKS if getattr(change, name) is not getattr(VersionChange, name)
    }
    if not overridden:
        raise InvalidChangeError(
            f"{owner} overrides none of the change hooks ({', '.join(CHANGE_HOOKS)})"
        )
    if "downgrade_error" in overridden and change.resources != (ERROR_OBJECT,):
        raise InvalidChangeError(f"{owner}: error changes declare resources = ('error',)")
    if "downgrade_previous_attributes" in overridden and change.resources != (EVENT_OBJECT,):
        raise InvalidChangeError(
            f"{owner}: changes to previous_attributes declare resources = ('event',)"
        )
    if overridden & {"upgrade_request", "check_request"} and not change.operations:
        raise InvalidChangeError(f"{owner} changes requests but names no operations")


# A change overrides at least one (docs/versioning.md); `downgrade_schema`, `downgrade_params`
# and `needs` serve these and are none of them.
CHANGE_HOOKS = (
    "downgrade",
    "downgrade_previous_attributes",
    "downgrade_error",
    "upgrade_request",
    "check_request",
)
EVENT_OBJECT = "event"

# The verbs a change's name may start with (docs/versioning.md lists them).
CHANGE_VERBS = frozenset(
    {
        "Add", "Allow", "Autoexpand", "Change", "Collapse", "Default", "Drop", "Expand",
        "Make", "Move", "Nest", "Omit", "Refuse", "Remove", "Rename", "Render", "Replace",
        "Require", "Restore", "Return", "Split", "Stop", "Turn", "Use",
    }
)  # fmt: skip


def _verb_first(name: str) -> bool:
    first = ""
    for index, char in enumerate(name):
        if index and char.isupper():
            break
        first += char
    return first in CHANGE_VERBS


@dataclass(frozen=True)
class VersionPlan:
    """What rendering at one version involves, computed once per version."""

    version: str
    response_changes: Mapping[str, tuple[VersionChange, ...]]
    """Per object name, the changes to apply, newest first."""
    error_changes: tuple[VersionChange, ...]
    request_upgrades: tuple[VersionChange, ...]
    """Request changes newer than the version, oldest first (old shape -> latest)."""
    request_checks: tuple[VersionChange, ...]
    """Request changes in force at the version."""
    previous_attributes_changes: tuple[VersionChange, ...] = ()
    """Changes to how an event's `previous_attributes` report a change, newest first."""

    @property
    def renders_responses(self) -> bool:
        """Whether a response body at this version differs from the latest schema's."""
        return bool(self.response_changes or self.previous_attributes_changes)

    @property
    def is_identity(self) -> bool:
        return not self.renders_responses and not self.error_changes


def newer_than(change_version: str, version: str) -> bool:
    return KNOWN_VERSIONS.index(change_version) < KNOWN_VERSIONS.index(version)


@cache
def plan(version: str) -> VersionPlan:
    """The plan for a known version (raises KeyError for an unknown one)."""
    if version not in KNOWN_VERSIONS:
        raise KeyError(version)
    newer: list[VersionChange] = []
    in_force: list[VersionChange] = []
    for module in version_modules():  # newest first
        for change in module.changes:
            (newer if newer_than(module.version, version) else in_force).append(change())
    by_resource: dict[str, list[VersionChange]] = {}
    errors: list[VersionChange] = []
    previous_attributes: list[VersionChange] = []
    for newer_change in newer:
        if _overrides(newer_change, "downgrade"):
            for resource in newer_change.resources:
                by_resource.setdefault(resource, []).append(newer_change)
        if _overrides(newer_change, "downgrade_previous_attributes"):
            previous_attributes.append(newer_change)
        if _overrides(newer_change, "downgrade_error"):
            errors.append(newer_change)
    return VersionPlan(
        version=version,
        response_changes={name: tuple(items) for name, items in by_resource.items()},
        error_changes=tuple(errors),
        request_upgrades=tuple(
            change for change in reversed(newer) if _overrides(change, "upgrade_request")
        ),
        request_checks=tuple(change for change in in_force if _overrides(change, "check_request")),
        previous_attributes_changes=tuple(previous_attributes),
    )


def _overrides(change: VersionChange, hook: str) -> bool:
    return getattr(type(change), hook) is not getattr(VersionChange, hook)


def all_changes() -> Sequence[type[VersionChange]]:
    return [change for module in version_modules() for change in module.changes]


def load() -> None:
    """Load and check every module and build the plan of every version (start-up)."""
    version_modules()
    free_form_fields()
    for version in KNOWN_VERSIONS:
        plan(version)
    assert plan(LATEST_VERSION).is_identity
