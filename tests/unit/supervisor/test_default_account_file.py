"""The default test account's keys, kept in the data directory by `remit serve`: written whole
or not at all, and, when the file cannot be read, a refusal naming it rather than a
traceback at every later start (or another account made behind the operator's back)."""

import json
from pathlib import Path
from typing import Any, NoReturn

import pytest

from remit.config import ConfigError
from remit.supervisor import read_default_account, write_default_account

ACCOUNT = {"id": "acct_1", "secret_key": "sk_test_1", "publishable_key": "pk_test_1"}


def test_the_account_written_is_read_back_and_private(tmp_path: Path) -> None:
    assert read_default_account(tmp_path) is None
    write_default_account(tmp_path, ACCOUNT)
    assert read_default_account(tmp_path) == ACCOUNT
    assert (tmp_path / "default-account.json").stat().st_mode & 0o777 == 0o600
    assert [path.name for path in tmp_path.iterdir()] == ["default-account.json"]


def test_a_write_cut_short_leaves_the_file_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_default_account(tmp_path, ACCOUNT)

    def dies_part_way(value: Any, handle: Any, **_: Any) -> NoReturn:
        handle.write('{"id": ')
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(json, "dump", dies_part_way)
    with pytest.raises(OSError, match="No space left"):
        write_default_account(tmp_path, {**ACCOUNT, "id": "acct_2"})
    monkeypatch.undo()
    assert read_default_account(tmp_path) == ACCOUNT
    assert [path.name for path in tmp_path.iterdir()] == ["default-account.json"]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "it is not JSON"),
        ('{"id": "acct_1", "secr', "it is not JSON"),
        ("[]", "it holds no account id and keys"),
        ('{"id": "acct_1"}', "it holds no account id and keys"),
    ],
)
def test_a_file_that_holds_no_account_is_refused_naming_it(
    text: str, why: str, tmp_path: Path
) -> None:
    path = tmp_path / "default-account.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        read_default_account(tmp_path)
    assert str(refused.value) == (
        f"the default account file {path} cannot be read ({why}): restore it, or remove it to "
        "have a new test account created"
    )


def test_a_file_that_cannot_be_opened_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "default-account.json").mkdir()
    with pytest.raises(ConfigError, match=r"cannot be read \(IsADirectoryError\)"):
        read_default_account(tmp_path)
