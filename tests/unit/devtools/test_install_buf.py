"""buf's installer takes the right platform package, installs only what matches its pinned
hash, and takes the binary out of the package (no network: tarballs are built here)."""

import base64
import hashlib
import io
import tarfile
import urllib.request
from pathlib import Path

import pytest

from remit.devtools import install_buf
from remit.devtools.install_buf import InstallError, binary_from, package_for, verified


def _tarball(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _integrity(content: bytes) -> str:
    return base64.b64encode(hashlib.sha512(content).digest()).decode()


@pytest.mark.parametrize(
    ("system", "machine", "package"),
    [
        ("Linux", "x86_64", "buf-linux-x64"),
        ("Linux", "aarch64", "buf-linux-aarch64"),
        ("Linux", "arm64", "buf-linux-aarch64"),
        ("Darwin", "arm64", "buf-darwin-arm64"),
        ("Darwin", "x86_64", "buf-darwin-x64"),
    ],
)
def test_each_platform_gets_its_own_package(system: str, machine: str, package: str) -> None:
    assert package_for(system, machine) == package


@pytest.mark.parametrize(("system", "machine"), [("Linux", "riscv64"), ("Windows", "AMD64")])
def test_a_platform_with_no_pinned_binary_is_refused(system: str, machine: str) -> None:
    with pytest.raises(InstallError, match=r"no buf .* binary is pinned"):
        package_for(system, machine)


def test_every_pinned_integrity_is_a_sha512() -> None:
    for integrity in install_buf.INTEGRITY.values():
        assert len(base64.b64decode(integrity, validate=True)) == 64


def test_a_tarball_is_taken_only_when_its_hash_is_the_pinned_one() -> None:
    tarball = _tarball({"package/bin/buf": b"\x7fELF buf"})
    assert verified(tarball, _integrity(tarball)) == tarball
    with pytest.raises(InstallError, match="sha512"):
        verified(tarball + b"tampered", _integrity(tarball))


def test_the_binary_comes_out_of_the_package() -> None:
    tarball = _tarball({"package/package.json": b"{}", "package/bin/buf": b"\x7fELF buf"})
    assert binary_from(tarball) == b"\x7fELF buf"
    with pytest.raises(InstallError, match="holds no package/bin/buf"):
        binary_from(_tarball({"package/package.json": b"{}"}))


def test_install_writes_an_executable_from_a_verified_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tarball = _tarball({"package/bin/buf": b"\x7fELF buf"})
    served: list[str] = []

    class Response(io.BytesIO):
        def __enter__(self) -> "Response":
            return self

        def __exit__(self, *exc: object) -> None:
            self.close()

    def urlopen(url: str, timeout: float) -> Response:
        served.append(url)
        return Response(tarball)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setitem(install_buf.INTEGRITY, "buf-linux-x64", _integrity(tarball))
    destination = tmp_path / "bin" / "buf"
    install_buf.install("buf-linux-x64", destination)

    assert served == [
        f"{install_buf.REGISTRY}/@bufbuild/buf-linux-x64/-/buf-linux-x64-{install_buf.VERSION}.tgz"
    ]
    assert destination.read_bytes() == b"\x7fELF buf"
    assert destination.stat().st_mode & 0o111
    assert not destination.with_name("buf.partial").exists()
