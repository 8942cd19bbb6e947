"""pytest fixtures: a session fleet of 3 hosts, fresh hosts per test, a systemd host.

The fleet runs in slot OPSAGENT_FLEET_SLOT (default 2; `python -m tests.fleet` by hand
uses slot 1), so a fleet started by hand and a test run never meet. A reaper process
tears the fleet down if pytest dies without running its finalizers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache

import pytest

from tests.fleet.fleet import Fleet
from tests.fleet.host import Host
from tests.fleet.reaper import owned

SLOT = int(os.environ.get("OPSAGENT_FLEET_SLOT", "2"))
TOOLS = ("ip", "unshare", "nsenter", "mount", "mmdebstrap", "nft", "ssh", "ssh-keygen")


@cache
def unavailable() -> str:
    """Why no fleet can be made here, or "" when it can."""
    if os.geteuid() != 0:
        return "the test fleet needs root (network namespaces and mounts)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"the test fleet needs {', '.join(missing)} (sh contrib/dev.sh test installs them as root)"
    probe = f"ofl{SLOT}-probe{os.getpid()}"  # two processes may ask at once (xdist workers)
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        return f"cannot create network namespaces here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return ""


def require() -> None:
    """Skip the test, with the reason, where no fleet can be made; fail it under CI as root."""
    reason = unavailable()
    if reason and os.environ.get("CI") and os.geteuid() == 0:
        pytest.fail(f"CI runs as root, where the fleet must work: {reason}")  # never a quiet skip
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def fleet() -> Iterator[Fleet]:
    """Three plain hosts h1-h3 for the whole session (more may be added by other fixtures)."""
    require()
    with owned(SLOT) as made:
        made.up(3)
        yield made


@pytest.fixture
def fresh_fleet(fleet: Fleet) -> Fleet:
    """The fleet with h1-h3 reset to the pristine image."""
    for name in ("h1", "h2", "h3"):
        fleet.reset(name)
    return fleet


@pytest.fixture
def fresh_host(fleet: Fleet) -> Host:
    """h1, reset to the pristine image."""
    return fleet.reset("h1")


@pytest.fixture(scope="session")
def systemd_host(fleet: Fleet) -> Host:
    """A host booted with systemd (systemd-nspawn), added to the session fleet once."""
    if shutil.which("systemd-nspawn") is None:
        pytest.fail("systemd-nspawn missing (package systemd-container; contrib/dev.sh installs it)")
    booted = [h for h in fleet.hosts.values() if h.systemd] or fleet.up(0, systemd=1)
    state = fleet.run(booted[0].name, "timeout 120 systemctl is-system-running --wait", check=False)
    assert state.stdout.strip() in ("running", "degraded"), state
    return booted[0]
