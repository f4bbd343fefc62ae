"""Settings `remit serve` and each process read as they start: one malformed says so naming its
variable (a `ConfigError`, exit 2), never with a traceback from wherever it is first used."""

from pathlib import Path

import pytest

from remit.cli import _config_from, build_parser
from remit.config import ConfigError, from_env
from tests.support.tls import make_tls, tls_env


@pytest.mark.parametrize("setting", ["REMIT_API_WORKERS", "REMIT_CORE_PROCESSES"])
@pytest.mark.parametrize("value", ["0", "-1", "two", "65", "\u00b2", "\u00b9", "\u0661", " 2"])
def test_a_process_count_out_of_range_or_not_in_ascii_digits_names_its_variable(
    setting: str, value: str
) -> None:
    # Superscripts pass `str.isdigit` but not `int`; an Arabic-Indic one passes `int` too.
    with pytest.raises(ConfigError, match=f"{setting} must be between 1 and 64"):
        from_env({setting: value})


def test_the_api_workers_are_capped_as_the_core_processes_are() -> None:
    assert from_env({"REMIT_API_WORKERS": "64"}).api_workers == 64


def test_api_workers_0_on_the_command_line_is_refused_not_ignored() -> None:
    with pytest.raises(ConfigError, match="REMIT_API_WORKERS must be between 1 and 64, got '0'"):
        _config_from(build_parser().parse_args(["serve", "--api-workers", "0"]))
    with pytest.raises(ConfigError, match="REMIT_CORE_PROCESSES must be between 1 and 64"):
        _config_from(build_parser().parse_args(["serve", "--core-processes", "0"]))


@pytest.mark.parametrize("part", ["CERT", "KEY", "CA"])
def test_a_missing_mutual_tls_file_is_refused_at_start_naming_its_variable(
    part: str, tmp_path: Path
) -> None:
    env = tls_env(make_tls(tmp_path))
    Path(env[f"REMIT_INTERNAL_TLS_{part}"]).unlink()
    with pytest.raises(ConfigError, match=rf"REMIT_INTERNAL_TLS_{part} .* cannot be read"):
        from_env(env)


def test_a_mutual_tls_key_of_a_shared_secret_volume_is_accepted(tmp_path: Path) -> None:
    """Orchestrators' secret volumes are often 0644 inside a one-user container."""
    tls = make_tls(tmp_path)
    tls.key.chmod(0o644)
    config = from_env(tls_env(tls))
    assert config.internal_tls is not None
    assert config.internal_tls.key == tls.key


_SETTINGS = ("DATABASE_URL", "VAULT_DATABASE_URL", "ACQUIRER_DATABASE_URL")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("postgresql://remit:a@db:5432/remit", "postgresql://other:b@DB/remit"),
        ("postgresql://remit@127.0.0.1:5433/remit", "postgres://remit@localhost:5433/remit"),
        (
            "postgresql://remit@[::1]/remit?sslmode=disable",
            "postgresql+psycopg://x@127.0.0.1/remit",
        ),
        ("postgresql:///remit?host=/run/pg", "postgresql://u@/remit?host=/run/pg"),
        ("postgresql://remit@db/", "postgresql://remit@db:5432/remit"),
    ],
)
@pytest.mark.parametrize(("a", "b"), [(0, 1), (0, 2), (1, 2)])
def test_two_database_urls_naming_one_database_are_refused(
    first: str, second: str, a: int, b: int
) -> None:
    with pytest.raises(ConfigError) as refused:
        from_env({_SETTINGS[a]: first, _SETTINGS[b]: second})
    assert str(refused.value) == (
        f"{_SETTINGS[a]} and {_SETTINGS[b]} name the same database: the core, the vault and "
        "the acquirer each need a database of their own (their migrations would collide in one)"
    )
    assert "remit:a" not in str(refused.value)


@pytest.mark.parametrize(
    "urls",
    [
        ("postgresql://r@db/remit_core", "postgresql://r@db/remit_vault", "postgresql://r@db/x"),
        ("postgresql://r@db/remit", "postgresql://r@db:5433/remit", "postgresql://r@db2/remit"),
        ("postgresql:///remit?host=/run/a", "postgresql:///remit?host=/run/b", ""),
    ],
)
def test_databases_of_their_own_are_accepted(urls: tuple[str, str, str]) -> None:
    config = from_env(dict(zip(_SETTINGS, urls, strict=True)))
    assert config.database_url == urls[0]


def test_a_since_in_other_digits_is_refused_as_no_time() -> None:
    from remit.webhooks.tools import ToolError, parse_since

    with pytest.raises(ToolError, match="--since must be a unix timestamp"):
        parse_since("\u00b2")


@pytest.mark.parametrize(
    "urls",
    [
        # pg_service.conf decides the host or the database: not judged here.
        (
            "postgresql://db1.internal/?service=remit_core",
            "postgresql:///?service=remit_vault",
            "postgresql:///?service=remit_acq",
        ),
        (
            "postgresql://db1.internal:5432/?service=remit_core",
            "postgresql://db1.internal:5432/?service=remit_vault",
            "",
        ),
        # The query's dbname, host and port win over the URL's own, as in libpq.
        (
            "postgresql://u@db.internal/?dbname=remit_core",
            "postgresql://u@db.internal/?dbname=remit_vault",
            "postgresql://u@db.internal/remit_core?dbname=remit_acquirer",
        ),
        (
            "postgresql://u@db/remit",
            "postgresql://u@db/remit?host=db2",
            "postgresql://u@db/remit?port=5433",
        ),
        # A Unix socket directory's path is case-sensitive.
        ("postgresql:///remit?host=/run/PG", "postgresql:///remit?host=/run/pg", ""),
    ],
)
def test_databases_named_in_the_query_or_a_service_are_accepted(
    urls: tuple[str, str, str],
) -> None:
    config = from_env(dict(zip(_SETTINGS, urls, strict=True)))
    assert config.database_url == urls[0]


@pytest.mark.parametrize(
    ("variable", "value", "second"),
    [
        # PGDATABASE, not the user's name, is the database of a URL naming none.
        ("PGDATABASE", "elsewhere", "postgresql://u@db/u"),
        ("PGPORT", "5433", "postgresql://u@db:5432/"),
        # A service may name the database: not judged.
        ("PGSERVICE", "remit", "postgresql://u@db/u"),
    ],
)
def test_a_url_libpq_completes_from_the_environment_is_read_as_libpq_reads_it(
    variable: str, value: str, second: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    config = from_env({"DATABASE_URL": "postgresql://u@db/", "VAULT_DATABASE_URL": second})
    assert config.database_url == "postgresql://u@db/"


def test_a_url_whose_host_pghost_gives_is_compared_on_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST", "DB")
    with pytest.raises(ConfigError, match="name the same database"):
        from_env(
            {"DATABASE_URL": "postgresql:///remit", "VAULT_DATABASE_URL": "postgresql://db/remit"}
        )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("postgresql://u@db/?dbname=remit", "postgresql://u@DB/remit"),
        ("postgresql://u@db:5432/remit?service=s", "postgresql://v@db:5432/remit?service=t"),
        ("postgresql://u@x/remit?host=db&port=5433", "postgresql://u@db:5433/remit"),
    ],
)
def test_urls_naming_one_database_through_the_query_are_refused(first: str, second: str) -> None:
    with pytest.raises(ConfigError, match="name the same database"):
        from_env({"DATABASE_URL": first, "VAULT_DATABASE_URL": second})
