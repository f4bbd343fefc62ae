"""The changelog, in Markdown, generated from the version-change modules: one section per
version with changes (newest first), one entry per change (its docstring)."""

import inspect

from remit.versioning.registry import version_modules
from versions import KNOWN_VERSIONS


def changelog_markdown() -> str:
    lines = [
        "# remit API changelog",
        "",
        f"{len(KNOWN_VERSIONS)} versions are accepted, from {KNOWN_VERSIONS[-1]} to "
        f"{KNOWN_VERSIONS[0]}; the versions not listed here changed nothing remit renders.",
    ]
    for module in version_modules():
        lines += ["", f"## {module.version}", ""]
        if module.summary:
            summary = module.summary.split(":", 1)[-1].strip()
            lines += [summary[:1].upper() + summary[1:], ""]
        for change in module.changes:
            paragraphs = [
                " ".join(part.split())
                for part in inspect.cleandoc(change.__doc__ or "").split("\n\n")
                if part.strip()
            ]
            lines.append(f"- **{change.__name__}**: {paragraphs[0]}")
            lines += [f"\n  {paragraph}" for paragraph in paragraphs[1:]]
    return "\n".join(lines) + "\n"
