"""The rules every version-change module follows (docs/versioning.md), checked for all of them,
and the checks themselves shown to catch what they are meant to catch."""

import inspect
import re
from pathlib import Path

import pytest

from remit.core.jsonview import JsonObject
from remit.versioning.change import RenderContext, VersionChange, version_of_module
from remit.versioning.registry import (
    CHANGE_HOOKS,
    CHANGE_VERBS,
    InvalidChangeError,
    check_change,
    load,
    module_name,
    version_modules,
)
from versions import KNOWN_VERSIONS, LATEST_VERSION

TESTS = Path(__file__).parent
VERSIONS = Path(__file__).parents[2] / "versions"
GUIDE = Path(__file__).parents[2] / "docs" / "versioning.md"


def test_every_known_version_is_unique_and_the_sdk_version_is_the_latest() -> None:
    assert len(KNOWN_VERSIONS) == len(set(KNOWN_VERSIONS)) == 129
    assert LATEST_VERSION == "2026-10-28.endive"
    dates = [version.split(".")[0] for version in KNOWN_VERSIONS]
    assert dates == sorted(dates, reverse=True)


def test_every_module_in_versions_is_named_for_a_known_version() -> None:
    names = {module_name(version) for version in KNOWN_VERSIONS}
    modules = {path.stem for path in VERSIONS.glob("v*.py")}
    assert modules <= names
    assert modules == {module_name(m.version) for m in version_modules()}


def test_every_module_has_a_docstring_and_every_change_touches_a_resource() -> None:
    load()
    for module in version_modules():
        assert module.summary, module.module.__name__
        for change in module.changes:
            assert inspect.cleandoc(change.__doc__ or ""), change
            assert change.resources, change


def test_every_change_has_a_test_under_tests_versions_that_names_it() -> None:
    for module in version_modules():
        folder = TESTS / module_name(module.version)
        sources = " ".join(path.read_text() for path in folder.glob("test_*.py"))
        assert sources, f"no tests in {folder}"
        for change in module.changes:
            assert change.__name__ in sources, f"{change.__name__} has no test in {folder}"


def _renamer(**attributes: object) -> type[VersionChange]:
    def downgrade(self: VersionChange, obj: JsonObject, context: RenderContext) -> None:
        obj.pop("status", None)

    namespace: dict[str, object] = {
        "__doc__": "Renames something.",
        "__module__": "versions.v2099_01_01",
        "resources": ("payment_intent",),
        "fields": ("status",),
        "downgrade": downgrade,
    }
    namespace.update(attributes)
    return type(str(attributes.pop("name", "RenameSomething")), (VersionChange,), namespace)


def test_a_well_formed_change_passes_the_checks() -> None:
    check_change(_renamer())


@pytest.mark.parametrize(
    ("attributes", "complaint"),
    [
        ({"__doc__": None}, "no docstring"),
        ({"resources": ()}, "touches no resource"),
        ({"resources": ("payment_intnet",)}, "payment_intnet"),
        ({"fields": ("stauts",)}, "no field 'stauts'"),
        ({"fields": ("next_action.redirect_to_url.ur",)}, "redirect_to_url.ur"),
        ({"adds_back": ("status",)}, "still has it"),
        ({"name": "StatusRenamed"}, "verb first"),
        ({"operations": ("POST /v1/nowhere",), "params": ("x",)}, "/v1/nowhere"),
        (
            {"operations": ("POST /v1/payment_intents",), "params": ("allowed_source_types",)},
            "no field 'allowed_source_types'",
        ),
        (
            {"operations": ("POST /v1/payment_intents",), "old_params": ("amount",)},
            "still has it",
        ),
        (
            {"downgrade_previous_attributes": lambda self, previous, obj: None},
            "changes to previous_attributes declare resources",
        ),
    ],
)
def test_a_broken_change_is_refused_with_the_reason(
    attributes: dict[str, object], complaint: str
) -> None:
    with pytest.raises(InvalidChangeError, match=complaint.replace("[", r"\[")):
        check_change(_renamer(**attributes))


def test_a_change_that_overrides_no_hook_is_refused() -> None:
    idle = type(
        "RenameNothing",
        (VersionChange,),
        {"__doc__": "Nothing.", "resources": ("charge",), "__module__": "versions.v2099_01_01"},
    )
    with pytest.raises(InvalidChangeError, match="overrides none") as caught:
        check_change(idle)
    assert str(caught.value).endswith(
        "(downgrade, downgrade_previous_attributes, downgrade_error, upgrade_request, "
        "check_request)"
    )


def test_a_name_without_an_allowed_verb_first_is_told_the_verbs() -> None:
    with pytest.raises(InvalidChangeError) as caught:
        check_change(_renamer(name="FixStatus"))
    assert str(caught.value) == (
        "versions.v2099_01_01.FixStatus: name it with a verb first (RenameX, RemoveY, ...), one "
        "of Add, Allow, Autoexpand, Change, Collapse, Default, Drop, Expand, Make, Move, Nest, "
        "Omit, Refuse, Remove, Rename, Render, Replace, Require, Restore, Return, Split, Stop, "
        "Turn, Use"
    )


def _guide_bullet(title: str) -> str:
    """The text of the guide's "Writing a change" bullet that starts with `title` in bold."""
    text = GUIDE.read_text()
    start = text.index(f"- **{title}**")
    end = text.find("\n- **", start + 1)
    return text[start:end]


def test_the_guide_lists_the_verbs_and_the_hooks_the_registry_accepts() -> None:
    # One word in backticks is a verb; the examples (`RenameNextSourceAction`) are longer.
    verbs = set(re.findall(r"`([A-Z][a-z]+)`", _guide_bullet("Name")))
    assert verbs == CHANGE_VERBS
    hooks_line = _guide_bullet("Hooks").split(";")[0]
    assert tuple(re.findall(r"`(\w+)`", hooks_line)) == CHANGE_HOOKS


def test_a_change_knows_its_version_as_soon_as_it_is_defined() -> None:
    # Before the registry has loaded anything: a test (or a tool) that imports one change
    # module on its own still sees the version the change belongs to.
    change = type(
        "RenameEarly",
        (VersionChange,),
        {"__doc__": "Early.", "resources": ("charge",), "__module__": "versions.v2025_03_31"},
    )
    assert issubclass(change, VersionChange)
    assert change.version == "2025-03-31.basil"
    assert version_of_module("versions.v2017_02_14") == "2017-02-14"
    assert version_of_module("versions.v2099_01_01") is None
    assert version_of_module("tests.versions.v2025_03_31") is None
