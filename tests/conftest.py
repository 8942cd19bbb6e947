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


def pytest_itemcollected(item: pytest.Item) -> None:
    """As each test is collected, before pytest-xdist reads the groups in its own
    pytest_collection_modifyitems (marked there, the order of the two hooks decided)."""
    if "fleet" in getattr(item, "fixturenames", ()) or "/tests/e2e/" in str(item.path):
        item.add_marker(pytest.mark.xdist_group("fleet"))  # and the e2e tests' own hosts


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
    os.environ["OPSAGENT_COLD"] = "1"  # a developer's `opsagent warm` never runs a test's command
    yield
    if old is None:
        del os.environ["OPSAGENT_STATE_DIR"]
    else:
        os.environ["OPSAGENT_STATE_DIR"] = old
