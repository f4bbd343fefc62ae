"""Core migration 0078 creates statistics on an expression only where PostgreSQL has them
(14 and later); on 13 it builds the index alone instead of failing the upgrade."""

import importlib
from types import SimpleNamespace

import pytest

MIGRATION = importlib.import_module(
    "remit.storage.migrations.core.versions.0078_delivery_jobs_by_delivery"
)


@pytest.mark.parametrize(
    ("version", "supported"),
    [((13, 14), False), ((14, 0), True), ((16, 4), True), (None, False)],
)
def test_expression_statistics_are_made_from_postgresql_14(
    monkeypatch: pytest.MonkeyPatch, version: tuple[int, ...] | None, supported: bool
) -> None:
    bind = SimpleNamespace(dialect=SimpleNamespace(server_version_info=version))
    monkeypatch.setattr(MIGRATION, "op", SimpleNamespace(get_bind=lambda: bind))
    assert MIGRATION._expression_statistics_supported() is supported
