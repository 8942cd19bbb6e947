"""Fixtures shared by every test folder: the real test fleet (tests/fleet), and a state
directory of the session's own so that no test writes to /var/lib/opsagent.

Under pytest-xdist (`-n 2 --dist loadgroup`, as contrib/dev.sh runs the suite) every test
that uses the fleet, and every end-to-end test, is in one group: one worker makes the one
fleet of the run's slot and runs them one after the other, while the other tests share
out the workers."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from tests.fleet.fixtures import fleet, fresh_fleet, fresh_host, systemd_host

__all__ = ["fleet", "fresh_fleet", "fresh_host", "systemd_host"]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:  # the e2e tests that make hosts of their own too (tests/fleet's own)
        if "fleet" in getattr(item, "fixturenames", ()) or "/tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.xdist_group("fleet"))


@pytest.fixture(autouse=True)
def unpatched(request: pytest.FixtureRequest) -> Iterator[None]:
    """gevent's patch_all() in the pytest process (a parallel command's main() called
    in-process) blocks pytest-xdist's worker thread for good: name the test instead."""
    yield
    if "gevent.monkey" in sys.modules and sys.modules["gevent.monkey"].is_module_patched("threading"):
        pytest.fail(f"{request.node.nodeid} let gevent patch the pytest process: run that "
                    "command in a subprocess")


@pytest.fixture(scope="session", autouse=True)
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    old = os.environ.get("OPSAGENT_STATE_DIR")
    os.environ["OPSAGENT_STATE_DIR"] = str(tmp_path_factory.mktemp("state"))
    yield
    if old is None:
        del os.environ["OPSAGENT_STATE_DIR"]
    else:
        os.environ["OPSAGENT_STATE_DIR"] = old
