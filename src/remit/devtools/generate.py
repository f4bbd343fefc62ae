"""Generate the Python code and mypy stubs for `protos/` into its own import root (`gen/`).

`--check` generates into a scratch directory and fails when it differs from what is committed,
so stale generated code cannot land.
"""

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path("protos")
PACKAGE_ROOT = "remit_api"


def proto_files() -> list[str]:
    return sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))


def generate_into(out_dir: Path) -> None:
    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    # mypy-protobuf's plugins are installed beside this interpreter, which may not be on PATH.
    scripts = Path(sys.executable).parent
    files = proto_files()
    if not files:
        raise SystemExit("no .proto files under protos/")
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--plugin=protoc-gen-mypy={scripts / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={scripts / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        # Concrete servicer stubs: a servicer may leave RPCs to the base class's UNIMPLEMENTED.
        f"--mypy_grpc_out=generate_concrete_servicer_stubs:{out_dir}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    package = out_dir / PACKAGE_ROOT
    for directory in [package, *(p for p in package.rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()
    (package / "py.typed").touch()


def tree_differences(expected: Path, actual: Path) -> list[str]:
    def walk(cmp: filecmp.dircmp[str], prefix: str) -> list[str]:
        found = [f"{prefix}{name} (missing)" for name in cmp.left_only]
        found += [f"{prefix}{name} (unexpected)" for name in cmp.right_only]
        found += [f"{prefix}{name} (stale)" for name in cmp.diff_files]
        for name, sub in cmp.subdirs.items():
            found += walk(sub, f"{prefix}{name}/")
        return found

    ignore = ["__pycache__"]
    return walk(filecmp.dircmp(str(expected), str(actual), ignore=ignore), "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path, help="the import root to write (gen)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        fresh = Path(scratch)
        generate_into(fresh)
        target = options.out / PACKAGE_ROOT
        if options.check:
            if not target.exists():
                print(f"{target} is missing: run `make generate`", file=sys.stderr)
                return 1
            differences = tree_differences(fresh / PACKAGE_ROOT, target)
            if differences:
                print("generated code is stale; run `make generate`:", file=sys.stderr)
                for line in differences:
                    print(f"  {line}", file=sys.stderr)
                return 1
            print("generated code is up to date")
            return 0
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(fresh / PACKAGE_ROOT, target)
        print(f"generated {len(proto_files())} proto files into {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
