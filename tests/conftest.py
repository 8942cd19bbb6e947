"""Fixtures shared by every test folder: the real test fleet (tests/fleet), and a state
directory of the session's own so that no test writes to /var/lib/opsagent."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.fleet.fixtures import fleet, fresh_fleet, fresh_host, systemd_host

__all__ = ["fleet", "fresh_fleet", "fresh_host", "systemd_host"]


@pytest.fixture(scope="session", autouse=True)
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    old = os.environ.get("OPSAGENT_STATE_DIR")
    os.environ["OPSAGENT_STATE_DIR"] = str(tmp_path_factory.mktemp("state"))
    yield
    if old is None:
        del os.environ["OPSAGENT_STATE_DIR"]
    else:
        os.environ["OPSAGENT_STATE_DIR"] = old
