"""`remit serve --help` names the environment variable of every flag, as the README promises
("Every host and port is a flag and an environment variable")."""

import argparse
import re

import pytest

from remit.cli import _config_from, build_parser
from remit.config import ConfigError, from_env


def _serve_parser() -> argparse.ArgumentParser:
    subparsers = build_parser()._subparsers
    assert subparsers is not None
    action = next(a for a in subparsers._group_actions if a.dest == "command")
    assert isinstance(action, argparse._SubParsersAction)
    parser = action.choices["serve"]
    assert isinstance(parser, argparse.ArgumentParser)
    return parser


def test_every_serve_flag_names_its_environment_variable() -> None:
    unnamed = [
        action.option_strings[0]
        for action in _serve_parser()._actions
        if action.option_strings != ["-h", "--help"]
        and not re.search(r"\(env REMIT_[A-Z_]+", action.help or "")
    ]
    assert unnamed == []


def test_the_api_workers_flag_names_its_variable_and_default() -> None:
    api_workers = next(a for a in _serve_parser()._actions if "--api-workers" in a.option_strings)
    assert "(env REMIT_API_WORKERS, default 1)" in (api_workers.help or "")


def test_the_default_account_flag_asks_for_the_test_account_and_its_variable_is_checked() -> None:
    asked = _config_from(build_parser().parse_args(["serve", "--default-account"]))
    assert asked.default_account is True
    assert from_env({"REMIT_DEFAULT_ACCOUNT": "0"}).default_account is False
    # Unset: `remit serve` decides by whether the core database is an embedded one.
    assert from_env({}).default_account is None
    with pytest.raises(ConfigError, match="REMIT_DEFAULT_ACCOUNT must be 1 or 0"):
        from_env({"REMIT_DEFAULT_ACCOUNT": "yes"})
