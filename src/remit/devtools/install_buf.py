"""Install buf, the protobuf linter and breaking-change checker, without Node.js.

buf ships through npm as `@bufbuild/buf`, whose real content is one static binary per platform
(`@bufbuild/buf-linux-x64` and its siblings). A fresh machine has Python, git and make, not
npm, so this fetches the platform's package straight from the npm registry, checks it against
the integrity hash pinned below (the registry's own sha512, as a lock file records it), and
unpacks the binary to `DESTINATION`. Standard library only: it runs before, and apart from,
remit's own dependencies.

Upgrading buf: set `VERSION` and each platform's integrity from
`https://registry.npmjs.org/@bufbuild/buf-<platform>/<version>` (`dist.integrity`).
"""

import base64
import hashlib
import io
import os
import platform
import sys
import tarfile
import urllib.request
from pathlib import Path

VERSION = "1.75.0"

# npm platform package -> its tarball's integrity (sha512, base64), as the registry states it.
INTEGRITY = {
    "buf-linux-x64": (
        "YGGJAx0lpMCE7aMWjNOJcfoEaG/e+iYHnTC4SZ0P5eS4IffMryA9Z4/bb1m1wNXAEJ8ATFMEZOAk/5x9VE47ig=="
    ),
    "buf-linux-aarch64": (
        "eX+XyokzJDqsNIFo8b1O3DBvbnksOozPJX4QVsNn61JqSUtWspyTNeYqwg8lRDancML+bDqZEDFPABjAsVCQGQ=="
    ),
    "buf-darwin-arm64": (
        "QiQYSmtVUcKy9DK/d+zJ3+D4iUQmmiDQ3i8/yBr8cf7Nr28lqKMAIKznJE/uGRsjr90fHaUQO+Xsedec0ArN5g=="
    ),
    "buf-darwin-x64": (
        "U2W+MRE9jJ7Am7x02ZWt87U5lfPrjKMdB1aZDslsuyOHo+fEUvZolupmhoW30v6syNAWBOfkoi0k5TLc2FNGqQ=="
    ),
}

_MACHINES = {"x86_64": "x64", "amd64": "x64", "aarch64": "aarch64", "arm64": "arm64"}
REGISTRY = os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org").rstrip("/")
DESTINATION = Path(".tools/bin/buf")
_MEMBER = "package/bin/buf"
_TIMEOUT_S = 60


class InstallError(Exception):
    """buf could not be installed; the message says why."""


def package_for(system: str, machine: str) -> str:
    """The npm platform package holding buf for this system (`platform.system()`) and machine
    (`platform.machine()`)."""
    arch = _MACHINES.get(machine.lower())
    if system == "Darwin" and arch == "aarch64":
        arch = "arm64"
    if system == "Linux" and arch == "arm64":
        arch = "aarch64"
    name = f"buf-{system.lower()}-{arch}"
    if arch is None or name not in INTEGRITY:
        raise InstallError(f"no buf {VERSION} binary is pinned for {system} {machine}")
    return name


def verified(tarball: bytes, integrity: str) -> bytes:
    """The tarball, if its sha512 is the pinned one."""
    digest = base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    if digest != integrity:
        raise InstallError(f"the downloaded buf package's sha512 is {digest}, not {integrity}")
    return tarball


def binary_from(tarball: bytes) -> bytes:
    """The buf executable inside a platform package's tarball."""
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        try:
            member = archive.getmember(_MEMBER)
        except KeyError:
            raise InstallError(f"the buf package holds no {_MEMBER}") from None
        extracted = archive.extractfile(member) if member.isfile() else None
        if extracted is None:
            raise InstallError(f"{_MEMBER} in the buf package is not a file")
        return extracted.read()


def install(package: str, destination: Path) -> None:
    url = f"{REGISTRY}/@bufbuild/{package}/-/{package}-{VERSION}.tgz"
    if not url.startswith(("https://", "http://")):
        raise InstallError(f"the npm registry must be an http(s) URL, not {REGISTRY!r}")
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:  # noqa: S310 (checked above)
            tarball = response.read()
    except OSError as error:
        raise InstallError(f"could not download {url}: {error}") from None
    binary = binary_from(verified(tarball, INTEGRITY[package]))
    destination.parent.mkdir(parents=True, exist_ok=True)
    # Written beside and renamed over: an interrupted install never leaves half a binary.
    partial = destination.with_name(destination.name + ".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(destination)


def main() -> int:
    try:
        install(package_for(platform.system(), platform.machine()), DESTINATION)
    except InstallError as error:
        print(f"install_buf: {error}", file=sys.stderr)
        return 1
    print(f"buf {VERSION} installed at {DESTINATION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
