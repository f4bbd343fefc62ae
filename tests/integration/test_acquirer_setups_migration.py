"""Acquirer migration 0002 commits its columns before it builds its index without blocking
writes; an upgrade stopped during that build (a deploy's timeout, Ctrl-C, a crash) has not
recorded 0002, so the next upgrade runs it again from the start, and must get through."""

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import remit.storage.online_index as online_index
from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import upgrade
from tests.support.postgres import scratch_database

SETUPS = "0002_off_session_setups"


class StoppedDuringTheIndexBuildError(Exception):
    pass


@pytest.fixture
def scratch_acquirer(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "acquirer_setups") as url:
        yield url


def test_an_upgrade_stopped_while_the_index_is_built_runs_again_to_its_end(
    scratch_acquirer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade("acquirer", scratch_acquirer, "0001_acquirer")

    def stopped(*args: Any, **kwargs: Any) -> None:
        raise StoppedDuringTheIndexBuildError

    with monkeypatch.context() as patched:
        patched.setattr(online_index, "create_index_online", stopped)
        with pytest.raises(StoppedDuringTheIndexBuildError):
            upgrade("acquirer", scratch_acquirer, SETUPS)
    upgrade("acquirer", scratch_acquirer, SETUPS)
    with psycopg.connect(scratch_acquirer) as connection:
        version = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        index = connection.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = "
            "to_regclass('ix_authorizations_setup_network_transaction_id')"
        ).fetchone()
    assert version == (SETUPS,)
    assert index == (True,)
