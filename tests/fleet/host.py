"""One fleet host: a copy-on-write root over the image, and the processes that run it.

A plain host is `unshare` (private mount, UTS and PID namespaces) in the host's network
namespace, chrooted into the overlay, with a shell loop as PID 1 and sshd beside it. A
systemd host boots the same overlay with systemd-nspawn, booted again (its disk kept,
its /run fresh) when it reboots. Either way every process of
the host sits in its network namespace, which is how stop() finds and kills them all.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.fleet.net import FleetError, Net, sh

BOOT_SCRIPT = """\
set -e
hostname {name}
M={merged}
mount -t proc proc $M/proc
# as container runtimes do: the kernel's global settings are read-only from inside,
# only the host's own network namespace's keys (net.*) can be set
mount --bind $M/proc/sys $M/proc/sys
mount -o remount,bind,ro $M/proc/sys
mount --bind $M/proc/sys/net $M/proc/sys/net
mount -o remount,bind,rw $M/proc/sys/net
if [ -e $M/proc/sysrq-trigger ]; then
  mount --bind $M/proc/sysrq-trigger $M/proc/sysrq-trigger
  mount -o remount,bind,ro $M/proc/sysrq-trigger
fi
mount -t sysfs -o ro sysfs $M/sys
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts $M/dev/pts
mount --bind $M/dev/pts/ptmx $M/dev/ptmx
mount -t tmpfs -o mode=755 tmpfs $M/run
mkdir -p $M/run/sshd
mount -t tmpfs -o mode=1777 tmpfs $M/tmp
exec chroot $M /bin/sh -c '/usr/sbin/sshd -E /var/log/sshd.log; while :; do sleep 3600; done'
"""


@dataclass
class Host:
    name: str
    index: int
    address: str
    dir: str  # the host's tmpfs: upper, work and merged live here
    systemd: bool = False
    size: str = "1g"
    pid: int = 0  # unshare or systemd-nspawn, 0 when stopped

    @property
    def merged(self) -> Path:
        return Path(self.dir) / "merged"

    def path(self, inside: str) -> Path:
        """A path inside the host, as seen from this machine (through the overlay)."""
        return self.merged / inside.lstrip("/")

    def data(self) -> dict[str, Any]:
        return asdict(self)


def mount(host: Host, image: Path) -> None:
    top = Path(host.dir)
    top.mkdir(parents=True, exist_ok=True)
    sh("mount", "-t", "tmpfs", "-o", f"size={host.size},mode=755", f"fleet-{host.name}", str(top))
    for sub in ("upper", "work", "merged"):
        (top / sub).mkdir()
    sh("mount", "-t", "overlay", "overlay", "-o",
       f"lowerdir={image},upperdir={top / 'upper'},workdir={top / 'work'}", str(host.merged))


def umount(host: Host) -> None:
    top = Path(host.dir)
    for target in (host.merged, top):
        umounted = subprocess.run(["umount", str(target)], capture_output=True, check=False)
        if umounted.returncode and _mounted(target):
            sh("umount", "-l", str(target))


def start(host: Host, net: Net, log: Path) -> None:
    with open(log, "ab") as out:
        if host.systemd:  # booted again when it asks to reboot (nspawn exits 133), as a machine is
            nspawn = ["systemd-nspawn", "-D", str(host.merged), "--register=no", "--keep-unit",
                      "-M", host.name, f"--network-namespace-path=/run/netns/{net.netns(host.index)}",
                      "--console=passive", "-b"]
            args = ["sh", "-c", 'while :; do "$@"; rc=$?; [ "$rc" = 133 ] || exit "$rc"; done',
                    "boot", *nspawn]
        else:
            script = BOOT_SCRIPT.format(name=host.name, merged=host.merged)
            args = ["ip", "netns", "exec", net.netns(host.index), "unshare", "--mount", "--uts",
                    "--pid", "--fork", "--kill-child", "--propagation", "private", "sh", "-c", script]
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True)
    host.pid = proc.pid
    _children[proc.pid] = proc


def stop(host: Host, net: Net) -> None:
    """Kill every process of the host at once (as a power cut would) and wait for them."""
    own = [host.pid, *_children_of(host.pid)] if host.pid and _ours(host.pid, host) else []
    kill_until_gone(lambda: [*own, *net.pids(host.index)], host.name, timeout=10)
    _reap(host.pid)
    host.pid = 0


def kill_until_gone(find: Callable[[], list[int]], what: str, timeout: float) -> None:
    """SIGKILL whatever `find` returns until it returns only dead processes."""
    deadline = time.monotonic() + timeout
    while pids := [p for p in find() if alive(p)]:
        if time.monotonic() > deadline:
            raise FleetError(f"{what}: processes {sorted(pids)} survive SIGKILL")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def wait_ssh(host: Host, timeout: float = 60.0) -> None:
    """Wait until sshd on the host answers with its banner."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if host.pid and not alive(host.pid):
            raise FleetError(f"{host.name}: exited while starting (see its log)")
        try:
            with socket.create_connection((host.address, 22), timeout=2) as conn:
                conn.settimeout(5)
                if conn.recv(64).startswith(b"SSH-"):
                    return
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    raise FleetError(f"{host.name}: sshd did not answer on {host.address}:22 in {timeout:.0f} s ({last})")


def init_pid(host: Host, net: Net) -> int:
    """The host's PID 1 (the shell loop or systemd), seen from this machine."""
    for pid in net.pids(host.index):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        nspids = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
        if len(nspids) == 2 and nspids[1] == "1":
            return pid
    raise FleetError(f"{host.name} is not running")


def run_inside(host: Host, net: Net, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a shell command inside the host (all its namespaces and its root), no SSH needed."""
    pid = init_pid(host, net)
    done = subprocess.run(
        ["nsenter", "-t", str(pid), "-m", "-u", "-n", "-p", "-i", "-r", "-w", "/bin/sh", "-c", command],
        capture_output=True, text=True, check=False,
    )
    if check and done.returncode != 0:
        raise FleetError(f"{host.name}: {command!r}: rc {done.returncode}: {done.stderr.strip()}")
    return done


_children: dict[int, subprocess.Popen[bytes]] = {}


def _reap(pid: int) -> None:
    proc = _children.pop(pid, None)
    if proc is not None:
        proc.wait(timeout=10)


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _children_of(pid: int) -> list[int]:
    """The direct children of pid (a systemd host's nspawn under its boot loop)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _ours(pid: int, host: Host) -> bool:
    """Guard against a reused pid: the process must name the host's directory."""
    try:
        return host.dir.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _mounted(target: Path) -> bool:
    return str(target) in mount_points()


def mount_points() -> list[str]:
    """Where things are mounted in this machine's mount namespace."""
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
