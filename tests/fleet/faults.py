"""Faults to inject into a fleet host, each with its undo; `Fleet.reset` undoes them all."""

from __future__ import annotations

import contextlib
import gzip
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.fleet import host as hosts
from tests.fleet import slowlink
from tests.fleet.fleet import Fleet
from tests.fleet.net import FleetError

FILL = "/var/fleet-fill"


def cut(fleet: Fleet, name: str) -> None:
    """Take the host off the network: packets to and from it are dropped, sockets hang."""
    fleet.net.cut(fleet.host(name).index)


def restore(fleet: Fleet, name: str) -> None:
    fleet.net.restore(fleet.host(name).index)


@contextlib.contextmanager
def cut_off(fleet: Fleet, name: str) -> Iterator[None]:
    cut(fleet, name)
    try:
        yield
    finally:
        restore(fleet, name)


def kill_sshd(fleet: Fleet, name: str) -> None:
    """Kill every sshd of the host (the listener and open sessions); the host stays up."""
    fleet.run(name, "pkill -KILL -x sshd; while pgrep -x sshd >/dev/null; do sleep 0.05; done")


def start_sshd(fleet: Fleet, name: str) -> None:
    h = fleet.host(name)
    if h.systemd:
        fleet.run(name, "systemctl start ssh")
    else:
        fleet.run(name, "mkdir -p /run/sshd && /usr/sbin/sshd -E /var/log/sshd.log")
    hosts.wait_ssh(h)


def crash(fleet: Fleet, name: str) -> None:
    """Stop the host abruptly: every process killed at once, as on power loss."""
    h = fleet.host(name)
    hosts.stop(h, fleet.net)
    fleet.save()


def fill_disk(fleet: Fleet, name: str) -> int:
    """Fill the host's root filesystem (its size-limited tmpfs) to the last byte; returns bytes."""
    path = fleet.host(name).path(FILL)
    st = os.statvfs(path.parent)
    size = st.f_bavail * st.f_frsize
    with open(path, "wb", buffering=0) as f:
        if size:
            os.posix_fallocate(f.fileno(), 0, size)
        with contextlib.suppress(OSError):  # top off whatever the allocation left
            while True:
                f.write(b"\0" * 4096)
    return path.stat().st_size


def free_disk(fleet: Fleet, name: str) -> None:
    fleet.host(name).path(FILL).unlink(missing_ok=True)


def delay(fleet: Fleet, name: str, ms: int) -> None:
    """Add `ms` to every round trip to the host: tc netem, or where the kernel has no netem,
    a delaying relay in front of its sshd (new SSH connections only; see slowlink)."""
    h = fleet.host(name)
    if can_delay():
        fleet.net.delay(h.index, ms)
        return
    netns = fleet.net.netns(h.index)
    relay = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, slowlink.__file__, str(ms)],
                             stdout=subprocess.PIPE, start_new_session=True)
    assert relay.stdout is not None
    if relay.stdout.readline() != b"ready\n":
        raise FleetError(f"{name}: the delaying relay did not start")
    relay.stdout.close()
    slowlink.install(netns)


def undelay(fleet: Fleet, name: str) -> None:
    h = fleet.host(name)
    fleet.net.undelay(h.index)
    slowlink.uninstall(fleet.net.netns(h.index))
    for pid in fleet.net.pids(h.index):
        with contextlib.suppress(OSError):
            if slowlink.__file__.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


def can_delay() -> bool:
    """Whether this kernel has tc's netem qdisc (some minimal kernels leave it out)."""
    config = Path("/proc/config.gz")
    if not config.exists():
        return True  # no way to tell; assume a stock kernel with the module
    return b"CONFIG_NET_SCH_NETEM=" in gzip.decompress(config.read_bytes())
